//! Compute Optimizer's CSV export of EC2 instance recommendations
//! (`aws compute-optimizer export-ec2-instance-recommendations`, written to
//! S3), each row read into the item `get-ec2-instance-recommendations` prints,
//! so that one mapping serves both.
//!
//! The export names its columns after the API's fields: `accountId`,
//! `instanceArn`, `currentInstanceType`, and numbered columns for each
//! ranked option (`recommendationOptions_1_instanceType`,
//! `recommendationOptions_1_estimatedMonthlySavings_value`, …). Columns are
//! matched without regard to case (Athena, where these files are often
//! queried, lower-cases them). Only the export of EC2 instances is read;
//! the others are refused, naming the `get-…` call whose JSON to give.

use super::InputError;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The columns without which a row cannot become a recommendation, with
/// the `--fields-to-export` value that adds each to the export.
const REQUIRED: &[(&str, &str)] = &[
    ("accountid", "AccountId"),
    ("instancearn", "InstanceArn"),
    ("finding", "Finding"),
    ("currentinstancetype", "CurrentInstanceType"),
    (
        "recommendationoptions_1_instancetype",
        "RecommendationOptionsInstanceType",
    ),
    (
        "recommendationoptions_1_estimatedmonthlysavings_value",
        "RecommendationOptionsEstimatedMonthlySavingsValue",
    ),
];

/// Columns that name the other exports' resources, and the call whose JSON
/// pare reads for them.
const OTHER_EXPORTS: &[(&str, &str, &str)] = &[
    ("volumearn", "EBS volume", "get-ebs-volume-recommendations"),
    (
        "autoscalinggrouparn",
        "Auto Scaling group",
        "get-auto-scaling-group-recommendations",
    ),
    ("functionarn", "Lambda function", ""),
    ("servicearn", "ECS service", ""),
    ("resourcearn", "idle resource", "get-idle-recommendations"),
];

/// Does this text look like a CSV file rather than JSON?
pub(super) fn looks_like_csv(text: &str) -> bool {
    let first = text.trim_start();
    !(first.starts_with('{') || first.starts_with('['))
        && first.lines().next().is_some_and(|l| l.contains(','))
}

/// One record of the file, and the line it starts on.
#[derive(Debug)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// RFC 4180: fields separated by commas, records by CRLF, LF or a lone CR; a
/// field in double quotes may hold commas, line breaks and doubled quotes.
/// Each record goes to `each` as it is read (blank lines are not records),
/// so a large export is never held twice.
fn records(
    file: &str,
    text: &str,
    each: &mut dyn FnMut(Record) -> Result<(), InputError>,
) -> Result<(), InputError> {
    let err = |line: usize, column: usize, message: String| InputError {
        file: file.to_string(),
        line,
        column,
        message,
        help: "give the CSV file Compute Optimizer's export wrote, unchanged".into(),
    };
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1usize, 0usize);
    let mut start_line = 1;
    // At the start of a field; inside quotes (and where they opened).
    let mut at_start = true;
    let mut quoted: Option<(usize, usize)> = None;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        column += 1;
        if quoted.is_some() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    column += 1;
                    field.push('"');
                }
                '"' => quoted = None,
                '\n' => {
                    field.push('\n');
                    line += 1;
                    column = 0;
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = Some((line, column));
                was_quoted = true;
                at_start = false;
            }
            '"' => {
                return Err(err(
                    line,
                    column,
                    "a quote inside a field that does not start with one".into(),
                ));
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                fields.push(std::mem::take(&mut field));
                let fields = std::mem::take(&mut fields);
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    each(Record {
                        line: start_line,
                        fields,
                    })?;
                }
                line += 1;
                column = 0;
                start_line = line;
                at_start = true;
                was_quoted = false;
            }
            _ if was_quoted => {
                return Err(err(
                    line,
                    column,
                    "text after a quoted field's closing quote".into(),
                ));
            }
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if let Some((l, c)) = quoted {
        return Err(err(l, c, "a quoted field that is never closed".into()));
    }
    if !fields.is_empty() || !field.is_empty() || was_quoted {
        fields.push(field);
        each(Record {
            line: start_line,
            fields,
        })?;
    }
    Ok(())
}

/// The export's rows, each read as the item `get-ec2-instance-recommendations`
/// would print and mapped at once (the items are not all held: an export
/// of ten thousand rows is read in the memory of one).
pub(super) fn parse(
    file: &str,
    text: &str,
    choices: &super::Choices,
    out: &mut super::Parsed,
) -> Result<(), InputError> {
    let located = |line: usize, message: String, help: String| InputError {
        file: file.to_string(),
        line,
        column: 1,
        message,
        help,
    };
    let name = crate::vocabulary::words::clean(file);
    let mut header: Option<(Vec<String>, HashMap<String, usize>)> = None;
    records(file, text, &mut |row| {
        let Some((fields, columns)) = &header else {
            let mut columns = HashMap::new();
            for (i, c) in row.fields.iter().enumerate() {
                let key = c.trim().to_ascii_lowercase();
                if columns.insert(key, i).is_some() {
                    return Err(located(
                        row.line,
                        format!(
                            "the column `{}` is named twice in the header (names are compared without case): which one holds the value is not clear",
                            crate::vocabulary::words::clean(c.trim())
                        ),
                        "give the CSV file Compute Optimizer's export wrote, unchanged".into(),
                    ));
                }
            }
            check_header(&name, &columns, &located)?;
            header = Some((row.fields, columns));
            return Ok(());
        };
        if row.fields.len() != fields.len() {
            return Err(located(
                row.line,
                format!(
                    "this row has {} fields where the header names {}",
                    row.fields.len(),
                    fields.len()
                ),
                "give the CSV file Compute Optimizer's export wrote, unchanged".into(),
            ));
        }
        let get = |column: &str| {
            columns
                .get(column)
                .map(|&i| row.fields[i].trim())
                .filter(|v| !v.is_empty())
        };
        super::co::push(out, super::co::instance(&item(&get), choices));
        Ok(())
    })?;
    if header.is_none() {
        return Err(located(
            1,
            format!("{name} is empty"),
            "give the CSV file Compute Optimizer's export wrote".into(),
        ));
    }
    Ok(())
}

/// The header names the export of EC2 instances, with the columns needed.
fn check_header(
    name: &str,
    columns: &HashMap<String, usize>,
    located: &dyn Fn(usize, String, String) -> InputError,
) -> Result<(), InputError> {
    if let Some((_, what, call)) = OTHER_EXPORTS
        .iter()
        .find(|(c, _, _)| columns.contains_key(*c))
        .filter(|_| !columns.contains_key("instancearn"))
    {
        return Err(located(
            1,
            format!(
                "{name} is Compute Optimizer's export of {what} recommendations: pare reads only its export of EC2 instances"
            ),
            if call.is_empty() {
                format!("pare has no action for {what} recommendations")
            } else {
                format!("for these, give what `aws compute-optimizer {call} --output json` prints")
            },
        ));
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(c, _)| !columns.contains_key(*c))
        .map(|(_, field)| *field)
        .collect();
    if !missing.is_empty() {
        return Err(located(
            1,
            format!(
                "{name} is not Compute Optimizer's export of EC2 instance recommendations with the columns pare needs: {} missing",
                missing.len()
            ),
            format!(
                "export with `--fields-to-export` including {}",
                missing.join(" ")
            ),
        ));
    }
    Ok(())
}

/// A number as the API gives it, or the text when it is not one (the
/// mapping then treats it as not given).
fn number(v: &str) -> Value {
    v.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .and_then(serde_json::Number::from_f64)
        .map_or_else(|| Value::from(v), Value::Number)
}

/// The API's spelling of a finding (`OVER_PROVISIONED`, `Over-provisioned`
/// and `Overprovisioned` are one finding).
fn finding(v: &str) -> String {
    let squashed: String = v
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    match squashed.as_str() {
        "overprovisioned" => "Overprovisioned".into(),
        "underprovisioned" => "Underprovisioned".into(),
        "optimized" => "Optimized".into(),
        "notoptimized" => "NotOptimized".into(),
        _ => v.to_string(),
    }
}

/// `2026-11-26 06:12:45` (the export's UTC time) as ISO 8601.
fn utc(v: &str) -> String {
    match v.split_once(' ') {
        Some((d, t)) if !t.contains(['Z', '+']) => format!("{d}T{t}Z"),
        _ => v.to_string(),
    }
}

fn item<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Value {
    let mut m = Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(key.to_string(), v);
        }
    };
    put("accountId", get("accountid").map(Value::from));
    put("instanceArn", get("instancearn").map(Value::from));
    put("instanceName", get("instancename").map(Value::from));
    put(
        "currentInstanceType",
        get("currentinstancetype").map(Value::from),
    );
    put("finding", get("finding").map(finding).map(Value::from));
    // A row for which the service could not make a recommendation.
    if let Some(code) = get("errorcode") {
        let message = get("errormessage").unwrap_or("no message");
        put(
            "exportError",
            Some(Value::from(format!("{code}: {message}"))),
        );
    }
    put(
        "lookBackPeriodInDays",
        get("lookbackperiodindays").map(number),
    );
    put(
        "lastRefreshTimestamp",
        get("lastrefreshtimestamp_utc")
            .or_else(|| get("lastrefreshtimestamp"))
            .map(|t| Value::from(utc(t))),
    );
    let metrics: Vec<Value> = [("cpu", "CPU"), ("memory", "MEMORY")]
        .iter()
        .filter_map(|(col, name)| {
            let v = get(&format!("utilizationmetrics_{col}_maximum"))?;
            Some(json!({ "name": name, "statistic": "MAXIMUM", "value": number(v) }))
        })
        .collect();
    if !metrics.is_empty() {
        put("utilizationMetrics", Some(Value::Array(metrics)));
    }
    put("tags", get("tags").and_then(tags));
    // The instance's name is its Name tag: keep it when the tags column is
    // absent or not a list pare can read.
    if let Some(n) = get("instancename")
        && !m
            .get("tags")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t["key"] == "Name"))
    {
        let mut list = m
            .remove("tags")
            .and_then(|t| t.as_array().cloned())
            .unwrap_or_default();
        list.push(json!({ "key": "Name", "value": n }));
        m.insert("tags".into(), Value::Array(list));
    }
    let mut options = Vec::new();
    for rank in 1..=20 {
        let col = |f: &str| get(&format!("recommendationoptions_{rank}_{f}"));
        let Some(instance_type) = col("instancetype") else {
            continue;
        };
        let mut o = Map::new();
        o.insert("rank".into(), Value::from(rank));
        o.insert("instanceType".into(), Value::from(instance_type));
        if let Some(r) = col("performancerisk") {
            o.insert("performanceRisk".into(), number(r));
        }
        if let Some(e) = col("migrationeffort") {
            o.insert("migrationEffort".into(), Value::from(e));
        }
        let differences: Vec<Value> = [
            ("isarchitecturedifferent", "Architecture"),
            ("ishypervisordifferent", "Hypervisor"),
            (
                "isinstancestoreavailabilitydifferent",
                "InstanceStoreAvailability",
            ),
            ("isnetworkinterfacedifferent", "NetworkInterface"),
            ("isstorageinterfacedifferent", "StorageInterface"),
            ("isvirtualizationtypedifferent", "VirtualizationType"),
        ]
        .iter()
        .filter_map(|(c, n)| match col(&format!("platformdifferences_{c}")) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("false") => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(Value::from(*n)),
            // Neither true nor false: not known to be the same.
            Some(v) => Some(Value::from(format!("{n}={v}"))),
        })
        .collect();
        o.insert("platformDifferences".into(), Value::Array(differences));
        let mut money = Map::new();
        if let Some(v) = col("estimatedmonthlysavings_value") {
            money.insert("value".into(), number(v));
        }
        if let Some(c) = col("estimatedmonthlysavings_currency") {
            money.insert("currency".into(), Value::from(c));
        }
        o.insert(
            "savingsOpportunity".into(),
            json!({ "estimatedMonthlySavings": money }),
        );
        options.push(Value::Object(o));
    }
    m.insert("recommendationOptions".into(), Value::Array(options));
    Value::Object(m)
}

/// The tags column, when it holds a JSON list of `{key, value}` objects.
fn tags(v: &str) -> Option<Value> {
    let parsed: Value = serde_json::from_str(v).ok()?;
    let list = parsed.as_array()?;
    let tags: Vec<Value> = list
        .iter()
        .filter_map(|t| {
            let k = t.get("key").or_else(|| t.get("Key"))?.as_str()?;
            let v = t.get("value").or_else(|| t.get("Value"))?.as_str()?;
            Some(json!({ "key": k, "value": v }))
        })
        .collect();
    Some(Value::Array(tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Record>, InputError> {
        let mut out = Vec::new();
        records("f.csv", text, &mut |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let r = all("a,b,c\r\n\"x,1\",\"say \"\"hi\"\"\",\"two\nlines\"\n\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].fields, vec!["x,1", "say \"hi\"", "two\nlines"]);
        assert_eq!(r[1].line, 2);
    }

    #[test]
    fn broken_quoting_is_located() {
        let e = all("a,b\n1,\"open\n2,3\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        let e = all("a,b\n1,x\"y\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        let e = all("a,b\n1,\"x\"y\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 6));
    }

    #[test]
    fn lone_carriage_returns_end_lines_too() {
        let r = all("a,b\r1,2\r3,4").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[2].line, r[2].fields.clone()),
            (3, vec!["3".into(), "4".into()])
        );
    }

    #[test]
    fn findings_in_any_spelling_are_the_apis() {
        for f in ["OVER_PROVISIONED", "Over-provisioned", "overprovisioned"] {
            assert_eq!(finding(f), "Overprovisioned");
        }
        assert_eq!(finding("Whatever"), "Whatever");
    }

    #[test]
    fn csv_or_json() {
        assert!(looks_like_csv("accountId,instanceArn\n"));
        assert!(!looks_like_csv("  {\"a\": 1}"));
        assert!(!looks_like_csv("hello"));
    }
}
