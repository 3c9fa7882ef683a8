//! Wall-clock time, injectable: `PARE_FAKE_NOW` (RFC 3339, UTC) pins it so
//! tests and reproducible runs get stable timestamps and ids.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, or the pinned time.
pub fn now() -> SystemTime {
    std::env::var("PARE_FAKE_NOW")
        .ok()
        .and_then(|s| parse_rfc3339(&s))
        .unwrap_or_else(SystemTime::now)
}

/// `2026-11-27T16:54:01Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// How long AWS makes a volume wait between two modifications.
pub const VOLUME_COOL_DOWN: Duration = Duration::from_secs(6 * 3600);

/// When a volume last modified at `t` (RFC 3339) may be modified again.
pub fn volume_ready_at(t: &str) -> Option<SystemTime> {
    Some(parse_rfc3339(t)? + VOLUME_COOL_DOWN)
}

/// The time six hours after `t` (RFC 3339), if that is still to come:
/// AWS allows a volume's next modification only then.
pub fn volume_cool_down(t: &str) -> Option<String> {
    let ready = volume_ready_at(t)?;
    (now() < ready).then(|| rfc3339(ready))
}

pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let secs = days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

// Howard Hinnant's civil-calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-27T16:54:01Z",
            "2000-02-29T23:59:59Z",
        ] {
            assert_eq!(rfc3339(parse_rfc3339(s).unwrap()), s);
        }
    }
}
