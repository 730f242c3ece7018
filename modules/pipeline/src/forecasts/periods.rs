//! Calendar periods of forecasts and quotas: months and quarters, named by
//! their first day.

use chrono::{Datelike, Months, NaiveDate};
use crm_core::error::{Error, Result};

use crate::values::ForecastPeriod;

/// Most periods one forecast covers (five years of months).
pub const MAX_PERIODS: usize = 60;

/// Months in a period.
fn months(p: ForecastPeriod) -> u32 {
    match p {
        ForecastPeriod::Month => 1,
        ForecastPeriod::Quarter => 3,
    }
}

/// The first day of the period that holds `d`.
pub fn start_of(p: ForecastPeriod, d: NaiveDate) -> NaiveDate {
    let m = months(p);
    let month = (d.month() - 1) / m * m + 1;
    NaiveDate::from_ymd_opt(d.year(), month, 1).unwrap_or(d)
}

/// The first day of the period after the one starting at `start`.
pub fn next(p: ForecastPeriod, start: NaiveDate) -> NaiveDate {
    start
        .checked_add_months(Months::new(months(p)))
        .unwrap_or(NaiveDate::MAX)
}

/// A period's name: `2026-11` for a month, `2026-Q4` for a quarter.
pub fn name(p: ForecastPeriod, start: NaiveDate) -> String {
    match p {
        ForecastPeriod::Month => start.format("%Y-%m").to_string(),
        ForecastPeriod::Quarter => format!("{}-Q{}", start.year(), (start.month() - 1) / 3 + 1),
    }
}

/// `d` if it is the first day of a period (VALIDATION naming `field`
/// otherwise).
pub fn checked_start(p: ForecastPeriod, d: NaiveDate, field: &str) -> Result<NaiveDate> {
    if start_of(p, d) == d {
        Ok(d)
    } else {
        Err(Error::invalid(
            field,
            match p {
                ForecastPeriod::Month => "must be the first day of a month",
                ForecastPeriod::Quarter => "must be the first day of a quarter",
            },
        ))
    }
}

/// The first days of the periods from the one holding `from` to the one
/// holding `to` (VALIDATION if `to` is before `from` or there are more than
/// [`MAX_PERIODS`]).
pub fn covering(p: ForecastPeriod, from: NaiveDate, to: NaiveDate) -> Result<Vec<NaiveDate>> {
    if to < from {
        return Err(Error::invalid("to", "must not be before from"));
    }
    let last = start_of(p, to);
    let mut out = Vec::new();
    let mut cur = start_of(p, from);
    while cur <= last {
        if out.len() == MAX_PERIODS {
            return Err(Error::invalid(
                "to",
                format!("a forecast covers at most {MAX_PERIODS} periods"),
            ));
        }
        out.push(cur);
        cur = next(p, cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn months_and_quarters() {
        let q = ForecastPeriod::Quarter;
        assert_eq!(start_of(q, d(2026, 11, 29)), d(2026, 10, 1));
        assert_eq!(next(q, d(2026, 10, 1)), d(2027, 1, 1));
        assert_eq!(name(q, d(2026, 10, 1)), "2026-Q4");
        assert_eq!(name(ForecastPeriod::Month, d(2026, 3, 1)), "2026-03");
        assert_eq!(
            covering(q, d(2026, 2, 14), d(2026, 4, 1)).unwrap(),
            vec![d(2026, 1, 1), d(2026, 4, 1)]
        );
        assert!(covering(q, d(2026, 2, 14), d(2026, 1, 1)).is_err());
        assert!(covering(ForecastPeriod::Month, d(2020, 1, 1), d(2026, 1, 1)).is_err());
        assert!(checked_start(q, d(2026, 5, 1), "periodStart").is_err());
        assert!(checked_start(q, d(2026, 4, 1), "periodStart").is_ok());
    }
}
