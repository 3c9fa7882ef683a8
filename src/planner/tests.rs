//! The planner's ordering rules, waves and estimates. (Its predictions are
//! checked end to end, through the engine and the rollback planner, by the
//! property test in `session/properties.rs`.)

use super::*;
use crate::config::Config;
use crate::provider::*;
use std::path::Path;

use crate::provider::fixtures::Fixed;

mod ordering {
    use super::*;

    fn quick_account() -> Inventory {
        let mut inv = Inventory::new("us-east-1");
        for (id, ty) in [("i-0000000a", "m5.xlarge"), ("i-0000000b", "m5.xlarge")] {
            inv.insert_instance(Instance {
                instance_type: ty.into(),
                image: None,
                monitoring: Monitoring::Detailed,
                ..fixtures::instance(id)
            });
        }
        for (id, at) in [
            ("vol-0000000a", Some("i-0000000a")),
            ("vol-0000000b", Some("i-0000000a")),
        ] {
            inv.insert_volume(Volume {
                attached_to: at.map(Into::into),
                ..fixtures::volume(id)
            });
        }
        inv.reindex();
        inv
    }

    fn plan(recs: &str) -> Result<Planned, PlanError> {
        let text = format!(
            "version: 1\nprovider: {{ sandbox: {{ seed: a.yaml }} }}\nrecommendations:\n{recs}"
        );
        let loaded = crate::plan::load_str(Path::new("p.yaml"), "p.yaml", text).unwrap();
        let graph = PlanGraph::from_depends_on(&loaded);
        let config = Config {
            require_approval_at: None,
            ..Config::default()
        };
        plan_with(
            &loaded,
            graph,
            &config,
            &Fixed,
            quick_account(),
            &Default::default(),
        )
    }

    #[test]
    fn changes_to_one_resource_form_a_chain_not_a_mesh() {
        let recs: String = (0..300)
            .map(|i| format!("  - {{ id: r{i}, action: config, fix: disable-detailed-monitoring, instance: i-0000000a }}\n"))
            .collect();
        let p = plan(&recs).unwrap();
        assert!(p.recs.iter().all(|r| r.implicit_after.len() <= 1));
        assert_eq!(p.recs[299].implicit_after[0].0, "r298");
    }

    #[test]
    fn rightsize_chains_are_estimated_in_shared_calls() {
        // Both running: stop → type → start each. The stops share a call,
        // the starts another; the types are one call each.
        let recs = "  - { id: a, action: rightsize, instance: i-0000000a, to: m5.large }\n  - { id: b, action: rightsize, instance: i-0000000b, to: m5.large }\n";
        let p = plan(recs).unwrap();
        assert_eq!(p.summary.steps, 6);
        assert_eq!(p.summary.calls, 4);
        let one =
            plan("  - { id: a, action: rightsize, instance: i-0000000a, to: m5.large }\n").unwrap();
        assert_eq!(
            p.summary.estimated_duration_s, one.summary.estimated_duration_s,
            "two side by side take as long as one"
        );
    }

    fn waves(p: &Planned) -> Vec<Vec<&str>> {
        p.waves
            .iter()
            .map(|w| w.iter().map(|&i| p.recs[i].id.as_str()).collect())
            .collect()
    }

    #[test]
    fn same_resource_runs_in_file_order() {
        let p = plan(
            "  - { id: mon, action: config, fix: disable-detailed-monitoring, instance: i-0000000a }\n  - { id: size, action: rightsize, instance: i-0000000a, to: m5.large }\n  - { id: other, action: rightsize, instance: i-0000000b, to: m5.large }\n",
        )
        .unwrap();
        assert_eq!(waves(&p), [vec!["mon", "other"], vec!["size"]]);
        assert_eq!(p.recs[1].implicit_after[0].0, "mon");
        assert!(
            p.recs[1].implicit_after[0]
                .1
                .contains("both change i-0000000a")
        );
    }

    #[test]
    fn a_volume_change_goes_before_its_instance_is_terminated() {
        let p = plan(
            "  - { id: kill, action: terminate, instance: i-0000000a }\n  - { id: gp3, action: storage, volume: vol-0000000a, to: gp3 }\n",
        )
        .unwrap();
        assert_eq!(waves(&p), [vec!["gp3"], vec!["kill"]]);
    }

    #[test]
    fn a_volume_delete_goes_after_its_instance_is_terminated() {
        let p = plan(
            "  - { id: del, action: storage, volume: vol-0000000a, delete: true }\n  - { id: kill, action: terminate, instance: i-0000000a }\n",
        )
        .unwrap();
        assert_eq!(waves(&p), [vec!["kill"], vec!["del"]]);
        assert_eq!(
            p.recs[0].status,
            Status::Change,
            "the volume is detached by then"
        );
    }

    #[test]
    fn an_implicit_edge_against_depends_on_is_a_cycle() {
        let err = plan(
            "  - { id: kill, action: terminate, instance: i-0000000a }\n  - { id: gp3, action: storage, volume: vol-0000000a, to: gp3, depends_on: [kill] }\n",
        )
        .err()
        .unwrap();
        let PlanError::Invalid(d) = err else {
            panic!("{err}")
        };
        assert_eq!(d[0].code, "plan::cycle");
        assert!(
            d[0].message.contains("kill") && d[0].message.contains("gp3"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn waves_and_estimates_are_deterministic() {
        let recs = "  - { id: c, action: rightsize, instance: i-0000000b, to: m5.large }\n  - { id: a, action: storage, volume: vol-0000000b, to: gp3 }\n  - { id: b, action: storage, volume: vol-0000000a, to: gp3, depends_on: [a] }\n";
        let one = plan(recs).unwrap();
        for _ in 0..5 {
            let again = plan(recs).unwrap();
            assert_eq!(waves(&again), waves(&one));
            assert_eq!(
                again.summary.estimated_duration_s,
                one.summary.estimated_duration_s
            );
        }
        assert_eq!(waves(&one), [vec!["c", "a"], vec!["b"]]);
        // Fixed estimates: every step 1 s; c has 3 steps, a and b 1 each; b waits for a.
        assert_eq!(one.summary.estimated_duration_s, 3);
    }

    #[test]
    fn schedule_length_respects_parallelism() {
        let text = "version: 1\nprovider: { sandbox: { seed: a.yaml } }\nrecommendations:\n  - { id: a, action: terminate, instance: i-0000000a }\n  - { id: b, action: terminate, instance: i-0000000b }\n  - { id: c, action: terminate, instance: i-0000000c }\n  - { id: d, action: terminate, instance: i-0000000d, depends_on: [c] }\n";
        let loaded = crate::plan::load_str(Path::new("p.yaml"), "p.yaml", text.into()).unwrap();
        let g = PlanGraph::from_depends_on(&loaded);
        let s = |secs: &[u64], p| {
            g.schedule_length(
                &secs
                    .iter()
                    .map(|&x| Duration::from_secs(x))
                    .collect::<Vec<_>>(),
                p,
            )
        };
        assert_eq!(s(&[10, 10, 10, 5], 10), Duration::from_secs(15));
        assert_eq!(s(&[10, 10, 10, 5], 2), Duration::from_secs(20));
        assert_eq!(s(&[10, 10, 10, 5], 1), Duration::from_secs(35));
    }
}
