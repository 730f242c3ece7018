//! Business time: a calendar (an IANA time zone, working periods per
//! weekday, holidays) and the two pure functions SLA clocks are built on,
//! [`Calendar::add`] (the instant N business minutes after another) and
//! [`Calendar::between`] (business minutes between two instants).
//!
//! Periods are local wall-clock times of one day (`09:00`–`12:00`); a
//! period never crosses midnight (`22:00`–`02:00` is refused: enter
//! `22:00`–`24:00` and `00:00`–`02:00` on the next weekday). On a day the
//! clocks change, a period lasts the real time between its local start and
//! end: 01:00–04:00 on a spring-forward day is two hours, on a fall-back
//! day four. A local time that does not exist (inside the spring-forward
//! gap) means the first instant after the gap; an ambiguous one (inside
//! the fall-back overlap) its earlier occurrence. Holidays are local dates
//! on which no period counts. Instants are UTC `NaiveDateTime`s, as stored.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Days searched for working time before a calculation gives up (a
/// calendar with periods always finds some within a week unless holidays
/// cover years).
const HORIZON_DAYS: i64 = 3 * 366;

/// A working period of one weekday, in minutes after local midnight:
/// `start < end <= 1440`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    /// Minutes after midnight (inclusive).
    pub start: u16,
    /// Minutes after midnight (exclusive), at most 1440.
    pub end: u16,
}

/// A calendar as stored (and snapshot onto clocks): JSON of this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// IANA name (`Asia/Shanghai`).
    pub time_zone: String,
    /// Working periods, any order.
    pub periods: Vec<Period>,
    /// Local dates without working time.
    pub holidays: Vec<NaiveDate>,
}

/// A checked calendar, ready to compute with.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    /// Per weekday (Monday first), sorted, non-overlapping.
    week: [Vec<(u16, u16)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// `HH:MM` (00:00–24:00) as minutes after midnight.
pub fn parse_hm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    let v = h * 60 + m;
    (m < 60 && v <= 1440).then_some(v)
}

/// Minutes after midnight as `HH:MM`.
pub fn format_hm(v: u16) -> String {
    format!("{:02}:{:02}", v / 60, v % 60)
}

impl Calendar {
    /// Around the clock in UTC, every day: calendar hours.
    pub fn always() -> Calendar {
        Calendar {
            tz: Tz::UTC,
            week: std::array::from_fn(|_| vec![(0, 1440)]),
            holidays: BTreeSet::new(),
        }
    }

    /// Checks a spec: a known time zone, at least one period, periods
    /// within a day (none crossing midnight) and not overlapping on the
    /// same weekday. The error names what is wrong (field, message).
    pub fn new(spec: &Spec) -> Result<Calendar, (&'static str, String)> {
        let tz: Tz = spec.time_zone.parse().map_err(|_| {
            (
                "timeZone",
                format!("{:?} is not an IANA time zone", spec.time_zone),
            )
        })?;
        if spec.periods.is_empty() {
            return Err(("periods", "a calendar needs at least one period".into()));
        }
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for p in &spec.periods {
            if p.weekday > 6 {
                return Err(("periods", format!("weekday {} is not 0–6", p.weekday)));
            }
            if p.end > 1440 || p.start >= p.end {
                return Err((
                    "periods",
                    format!(
                        "{}–{} is not a period within one day (a period ends after it starts \
                         and never crosses midnight: split it at 24:00)",
                        format_hm(p.start),
                        format_hm(p.end.min(1440))
                    ),
                ));
            }
            week[p.weekday as usize].push((p.start, p.end));
        }
        for day in &mut week {
            day.sort_unstable();
            if day.windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(("periods", "periods of one weekday overlap".into()));
            }
        }
        Ok(Calendar {
            tz,
            week,
            holidays: spec.holidays.iter().copied().collect(),
        })
    }

    /// The UTC instant of a local wall-clock time (see the module doc for
    /// gaps and overlaps).
    fn to_utc(&self, local: NaiveDateTime) -> NaiveDateTime {
        let mut t = local;
        // A gap is at most a few hours long; step through it by minutes.
        for _ in 0..(26 * 60) {
            match self.tz.from_local_datetime(&t) {
                LocalResult::Single(d) => return d.naive_utc(),
                LocalResult::Ambiguous(a, _) => return a.naive_utc(),
                LocalResult::None => t += Duration::minutes(1),
            }
        }
        local
    }

    /// The working intervals (UTC, in order) of the local day `date`.
    fn day(&self, date: NaiveDate) -> Vec<(NaiveDateTime, NaiveDateTime)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let at = |m: u16| {
            if m >= 1440 {
                (date + Duration::days(1)).and_time(NaiveTime::MIN)
            } else {
                date.and_time(
                    NaiveTime::from_num_seconds_from_midnight_opt(u32::from(m) * 60, 0)
                        .unwrap_or(NaiveTime::MIN),
                )
            }
        };
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .map(|&(s, e)| (self.to_utc(at(s)), self.to_utc(at(e))))
            .filter(|(s, e)| s < e)
            .collect()
    }

    /// The working intervals from the local day of `from` on, for the
    /// search horizon.
    fn intervals_from(
        &self,
        from: NaiveDateTime,
    ) -> impl Iterator<Item = (NaiveDateTime, NaiveDateTime)> + '_ {
        // The local day before too: a UTC instant early in a local day
        // may still be inside the previous local day's last period
        // only if periods crossed midnight, which they do not; but a
        // zone far from UTC shifts dates, so start one day early.
        let first = self.tz.from_utc_datetime(&from).date_naive() - Duration::days(1);
        (0..HORIZON_DAYS).flat_map(move |i| self.day(first + Duration::days(i)))
    }

    /// The instant `minutes` business minutes after `from` (`from` itself
    /// for 0 or less). None when the calendar has no working time within
    /// the search horizon.
    pub fn add(&self, from: NaiveDateTime, minutes: i64) -> Option<NaiveDateTime> {
        if minutes <= 0 {
            return Some(from);
        }
        let mut left = Duration::minutes(minutes);
        for (s, e) in self.intervals_from(from) {
            if e <= from {
                continue;
            }
            let s = s.max(from);
            let len = e - s;
            if left <= len {
                return Some(s + left);
            }
            left -= len;
        }
        None
    }

    /// Business time between two instants (zero when `to <= from`).
    pub fn duration_between(&self, from: NaiveDateTime, to: NaiveDateTime) -> Duration {
        let mut sum = Duration::zero();
        if to <= from {
            return sum;
        }
        for (s, e) in self.intervals_from(from) {
            if s >= to {
                break;
            }
            let (s, e) = (s.max(from), e.min(to));
            if e > s {
                sum += e - s;
            }
        }
        sum
    }

    /// Whole business minutes between two instants.
    pub fn between(&self, from: NaiveDateTime, to: NaiveDateTime) -> i64 {
        self.duration_between(from, to).num_minutes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn weekdays(tz: &str, ranges: &[(&str, &str)], holidays: &[&str]) -> Calendar {
        let mut periods = Vec::new();
        for d in 0..5 {
            for (s, e) in ranges {
                periods.push(Period {
                    weekday: d,
                    start: parse_hm(s).unwrap(),
                    end: parse_hm(e).unwrap(),
                });
            }
        }
        Calendar::new(&Spec {
            time_zone: tz.into(),
            periods,
            holidays: holidays
                .iter()
                .map(|h| NaiveDate::parse_from_str(h, "%Y-%m-%d").unwrap())
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn friday_evening_over_a_weekend_and_a_monday_holiday() {
        // 2026-12-04 is a Friday; Monday 7 December is a holiday. Shanghai
        // is UTC+8: Friday 17:30 local is 09:30 UTC.
        let c = weekdays("Asia/Shanghai", &[("09:00", "18:00")], &["2026-12-07"]);
        let due = c.add(utc("2026-12-04 09:30"), 240).unwrap();
        // 30 minutes on Friday, 3.5 hours on Tuesday: 12:30 local.
        assert_eq!(due, utc("2026-12-08 04:30"));
        assert_eq!(c.between(utc("2026-12-04 09:30"), due), 240);
        // Without the holiday it is Monday.
        let c = weekdays("Asia/Shanghai", &[("09:00", "18:00")], &[]);
        assert_eq!(
            c.add(utc("2026-12-04 09:30"), 240).unwrap(),
            utc("2026-12-07 04:30")
        );
    }

    #[test]
    fn split_days_and_starts_outside_working_time() {
        let c = weekdays("UTC", &[("09:00", "12:00"), ("13:00", "18:00")], &[]);
        // Monday 2026-11-30. Starting at lunch counts from 13:00.
        assert_eq!(
            c.add(utc("2026-11-30 12:15"), 60).unwrap(),
            utc("2026-11-30 14:00")
        );
        // 11:00 + 2h: one hour before lunch, one after.
        assert_eq!(
            c.add(utc("2026-11-30 11:00"), 120).unwrap(),
            utc("2026-11-30 14:00")
        );
        // Ending exactly at a period's end stays there.
        assert_eq!(
            c.add(utc("2026-11-30 09:00"), 180).unwrap(),
            utc("2026-11-30 12:00")
        );
        // Before opening, at night, on a Saturday.
        assert_eq!(
            c.add(utc("2026-11-30 03:00"), 1).unwrap(),
            utc("2026-11-30 09:01")
        );
        assert_eq!(
            c.add(utc("2026-12-05 10:00"), 30).unwrap(),
            utc("2026-12-07 09:30")
        );
        // A whole week is 5 × 8 hours.
        assert_eq!(
            c.between(utc("2026-11-30 00:00"), utc("2026-12-07 00:00")),
            40 * 60
        );
        assert_eq!(
            c.between(utc("2026-11-30 11:30"), utc("2026-11-30 13:30")),
            60
        );
        assert_eq!(
            c.between(utc("2026-12-05 00:00"), utc("2026-12-06 23:59")),
            0
        );
        assert_eq!(
            c.between(utc("2026-12-01 10:00"), utc("2026-11-30 10:00")),
            0
        );
        assert_eq!(
            c.add(utc("2026-12-01 10:00"), 0),
            Some(utc("2026-12-01 10:00"))
        );
    }

    #[test]
    fn add_and_between_agree() {
        let c = weekdays(
            "America/New_York",
            &[("08:30", "12:00"), ("12:45", "17:15")],
            &["2026-11-26"],
        );
        let from = utc("2026-11-20 19:07");
        for n in [1, 59, 60, 61, 299, 480, 481, 2000, 5000, 20_000] {
            let to = c.add(from, n).unwrap();
            assert_eq!(c.between(from, to), n, "{n} minutes to {to}");
            // One minute earlier is one business minute less, unless the
            // due instant opens a period (then it is the end of the last).
            assert!(c.between(from, to - Duration::minutes(1)) < n);
        }
    }

    #[test]
    fn clock_changes_count_real_time() {
        // Berlin springs forward on 2026-03-29 (02:00 → 03:00) and falls
        // back on 2026-10-25 (03:00 → 02:00); both are Sundays.
        let all_week = |tz: &str, s: &str, e: &str| {
            Calendar::new(&Spec {
                time_zone: tz.into(),
                periods: (0..7)
                    .map(|d| Period {
                        weekday: d,
                        start: parse_hm(s).unwrap(),
                        end: parse_hm(e).unwrap(),
                    })
                    .collect(),
                holidays: vec![],
            })
            .unwrap()
        };
        let c = all_week("Europe/Berlin", "01:00", "04:00");
        // Spring: 01:00 local = 00:00 UTC, 04:00 local (CEST) = 02:00 UTC.
        assert_eq!(
            c.between(utc("2026-03-29 00:00"), utc("2026-03-29 12:00")),
            120
        );
        // Autumn: 01:00 local (CEST) = 23:00 UTC, 04:00 (CET) = 03:00 UTC.
        assert_eq!(
            c.between(utc("2026-10-24 22:00"), utc("2026-10-25 12:00")),
            240
        );
        // A period starting inside the gap starts at its end (03:00 CEST).
        let c = all_week("Europe/Berlin", "02:30", "05:00");
        assert_eq!(
            c.add(utc("2026-03-28 23:00"), 1).unwrap(),
            utc("2026-03-29 01:01")
        );
        // Due times across a change keep the business minutes exact.
        let c = weekdays("Europe/Berlin", &[("09:00", "17:00")], &[]);
        let from = utc("2026-03-27 15:00"); // Friday 16:00 CET
        let due = c.add(from, 120).unwrap(); // 1 h Friday, 1 h Monday
        assert_eq!(due, utc("2026-03-30 08:00")); // Monday 10:00 CEST
    }

    #[test]
    fn calendar_hours_are_wall_time() {
        let c = Calendar::always();
        assert_eq!(
            c.add(utc("2026-12-04 17:30"), 4 * 60).unwrap(),
            utc("2026-12-04 21:30")
        );
        assert_eq!(
            c.between(utc("2026-12-04 17:30"), utc("2026-12-06 17:30")),
            2 * 24 * 60
        );
    }

    #[test]
    fn bad_calendars_are_refused() {
        let spec = |tz: &str, periods: Vec<Period>| Spec {
            time_zone: tz.into(),
            periods,
            holidays: vec![],
        };
        let p = |weekday, s: &str, e: &str| Period {
            weekday,
            start: parse_hm(s).unwrap(),
            end: parse_hm(e).unwrap(),
        };
        assert_eq!(
            Calendar::new(&spec("Mars/Olympus", vec![p(0, "09:00", "17:00")]))
                .unwrap_err()
                .0,
            "timeZone"
        );
        assert_eq!(
            Calendar::new(&spec("UTC", vec![])).unwrap_err().0,
            "periods"
        );
        // Crossing midnight is refused, 24:00 is allowed as an end.
        assert!(Calendar::new(&spec("UTC", vec![p(0, "22:00", "02:00")])).is_err());
        assert!(Calendar::new(&spec("UTC", vec![p(0, "22:00", "24:00")])).is_ok());
        assert!(
            Calendar::new(&spec(
                "UTC",
                vec![p(1, "09:00", "12:00"), p(1, "11:00", "13:00")]
            ))
            .is_err()
        );
        assert!(Calendar::new(&spec("UTC", vec![p(7, "09:00", "12:00")])).is_err());
        assert_eq!(parse_hm("24:01"), None);
        assert_eq!(parse_hm("9:5"), None);
        assert_eq!(parse_hm("09:05"), Some(545));
        // Holidays covering the whole horizon: no due time at all.
        let mut s = spec("UTC", vec![p(0, "09:00", "10:00")]);
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        s.holidays = (0..(HORIZON_DAYS + 10))
            .map(|i| start + Duration::days(i))
            .collect();
        let c = Calendar::new(&s).unwrap();
        assert_eq!(c.add(utc("2026-01-02 00:00"), 1), None);
    }
}
