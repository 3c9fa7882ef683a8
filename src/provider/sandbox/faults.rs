//! Latency and fault injection for the sandbox (tests and benchmarks).
//!
//! ```yaml
//! faults:
//!   latency_ms: 20            # every call
//!   seed: 7                   # for error_rate
//!   ops:
//!     stop_instance: { fail_nth: [2], code: InternalError }
//!     start_instance: { error_rate: 0.3, code: RequestLimitExceeded, retryable: true }
//!     terminate_instance: { fail_from: 1 }    # every call, permanently
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Delay added to every call, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Seed of the dice behind `error_rate`, so runs are repeatable.
    #[serde(default)]
    pub seed: u64,
    /// Faults by operation name (`stop_instance`, …, or `describe`).
    #[serde(default)]
    pub ops: BTreeMap<String, OpFault>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpFault {
    /// Delay for this operation instead of `latency_ms`.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Share of calls that fail, 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// 1-based numbers of the calls (of this operation, in this process) that fail.
    #[serde(default)]
    pub fail_nth: Vec<u64>,
    /// Every call from this number on fails.
    #[serde(default)]
    pub fail_from: Option<u64>,
    /// The error code returned (default `InternalError`).
    #[serde(default)]
    pub code: Option<String>,
    /// Whether the error is transient (retrying may succeed).
    #[serde(default)]
    pub retryable: bool,
}

/// The names `ops:` may use: every operation, and `describe` (reads).
pub fn op_names() -> impl Iterator<Item = &'static str> + Clone {
    std::iter::once("describe").chain(crate::vocabulary::Op::NAMES)
}

/// An injected failure.
#[derive(Debug)]
pub struct Injected {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

pub(super) struct Injector {
    faults: Faults,
    calls: BTreeMap<String, u64>,
    rng: u64,
}

impl Injector {
    pub fn new(faults: Faults) -> Injector {
        let rng = faults.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Injector {
            faults,
            calls: BTreeMap::new(),
            rng,
        }
    }

    /// The injected delay for one call of `op`.
    pub fn latency(&self, op: &str) -> Duration {
        let ms = self
            .faults
            .ops
            .get(op)
            .and_then(|f| f.delay_ms)
            .unwrap_or(self.faults.latency_ms);
        Duration::from_millis(ms)
    }

    /// How long `op` takes: the injected delay if any, else AWS's usual time.
    pub fn nominal(&self, op: &str) -> Duration {
        let injected = self.latency(op);
        if injected.is_zero() {
            super::super::nominal_duration(op)
        } else {
            injected
        }
    }

    /// Counts a call of `op` and decides whether it fails.
    pub fn check(&mut self, op: &str) -> Result<(), Injected> {
        let n = {
            let c = self.calls.entry(op.to_string()).or_default();
            *c += 1;
            *c
        };
        let Some(f) = self.faults.ops.get(op) else {
            return Ok(());
        };
        let roll = {
            // xorshift64*: small, deterministic for a seed.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let fails = f.fail_nth.contains(&n)
            || f.fail_from.is_some_and(|from| n >= from)
            || roll < f.error_rate;
        if fails {
            let code = f.code.clone().unwrap_or_else(|| "InternalError".into());
            return Err(Injected {
                message: format!("injected fault: call {n} of {op} fails with {code}"),
                code,
                retryable: f.retryable,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_from() {
        let mut ops = BTreeMap::new();
        ops.insert(
            "stop_instance".to_string(),
            OpFault {
                fail_nth: vec![2],
                ..OpFault::default()
            },
        );
        ops.insert(
            "start_instance".to_string(),
            OpFault {
                fail_from: Some(3),
                retryable: true,
                ..OpFault::default()
            },
        );
        let mut inj = Injector::new(Faults {
            ops,
            ..Faults::default()
        });
        let results: Vec<bool> = (0..4).map(|_| inj.check("stop_instance").is_ok()).collect();
        assert_eq!(results, [true, false, true, true]);
        let results: Vec<bool> = (0..4)
            .map(|_| inj.check("start_instance").is_ok())
            .collect();
        assert_eq!(results, [true, true, false, false]);
        assert!(inj.check("describe").is_ok());
    }

    #[test]
    fn error_rate_is_repeatable() {
        let faults = Faults {
            seed: 7,
            ops: BTreeMap::from([(
                "x".to_string(),
                OpFault {
                    error_rate: 0.5,
                    ..OpFault::default()
                },
            )]),
            ..Faults::default()
        };
        let run = || {
            let mut inj = Injector::new(faults.clone());
            (0..200).map(|_| inj.check("x").is_ok()).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let fails = a.iter().filter(|ok| !**ok).count();
        assert!((60..140).contains(&fails), "{fails}");
    }
}
