//! The JSON Schema of plan files, derived from the typed model.
//!
//! A recommendation is one flat mapping: the shared fields plus the fields of
//! its action. The schema says exactly that, one `oneOf` branch per action,
//! each closed (`additionalProperties: false`) so editors flag unknown fields
//! the way `pare validate` does.

use super::model::{self, Plan};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;
use std::borrow::Cow;

/// The fields every recommendation has.
#[derive(JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct Common {
    /// Unique within the plan: lowercase letters, digits, `-` and `_`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    id: String,
    /// Why: for the people who review the plan (it stays in the plan file, the approval record).
    reason: Option<String>,
    /// Declared monthly savings in USD, at most 1,000,000,000; else computed from the price catalog.
    #[schemars(range(min = 0.0, max = model::MAX_SAVINGS_MONTHLY_USD))]
    savings_monthly_usd: Option<f64>,
    /// Ids of recommendations that must finish first.
    depends_on: Option<Vec<String>>,
    /// Where an imported recommendation came from (`pare import` writes it).
    source: Option<model::Source>,
}

/// Stand-in type whose schema is the `oneOf` over actions.
pub struct RecommendationSchema;

impl JsonSchema for RecommendationSchema {
    fn schema_name() -> Cow<'static, str> {
        "Recommendation".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let branches = vec![
            branch::<model::Terminate>(generator, "terminate"),
            branch::<model::Rightsize>(generator, "rightsize"),
            branch::<model::Hibernate>(generator, "hibernate"),
            branch::<model::Spot>(generator, "spot"),
            branch::<model::Reserve>(generator, "reserve"),
            branch::<model::Autoscale>(generator, "autoscale"),
            branch::<model::Storage>(generator, "storage"),
            branch::<model::Config>(generator, "config"),
        ];
        json_schema!({
            "description": "One cost recommendation: an id, an action and the action's fields.",
            "type": "object",
            "required": ["id", "action"],
            "oneOf": branches,
        })
    }
}

fn branch<T: JsonSchema>(generator: &mut SchemaGenerator, action: &str) -> Value {
    let common = Common::json_schema(generator);
    let mut schema = T::json_schema(generator).to_value();
    let obj = schema
        .as_object_mut()
        .expect("a struct's schema is an object");
    let props = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .expect("properties is an object");
    let mut merged = serde_json::Map::new();
    merged.insert("action".into(), serde_json::json!({ "const": action }));
    if let Some(common_props) = common.get("properties").and_then(Value::as_object) {
        merged.extend(common_props.clone());
    }
    merged.extend(std::mem::take(props));
    *props = merged;
    let mut required = vec![Value::from("id"), Value::from("action")];
    if let Some(Value::Array(own)) = obj.get("required") {
        required.extend(own.iter().cloned());
    }
    obj.insert("required".into(), Value::Array(required));
    obj.insert("additionalProperties".into(), Value::Bool(false));
    obj.insert("title".into(), Value::from(action));
    schema
}

/// The plan file schema as pretty JSON, with a trailing newline.
pub fn plan_schema_json() -> String {
    let mut schema = schemars::schema_for!(Plan).to_value();
    strip_null(&mut schema);
    let mut out = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    out.push('\n');
    out
}

/// Removes the `null` that schemars allows for `Option` fields: a plan leaves
/// an optional field out, and the loader rejects `field: null`.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    obj.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = obj.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if any.len() == 1 {
                    let only = any.remove(0);
                    obj.remove("anyOf");
                    if let Value::Object(inner) = only {
                        obj.extend(inner);
                    }
                }
            }
            obj.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}
