//! Budget periods in UTC: which bucket spend made now goes to, which
//! buckets still count, and when each stops counting (the reset time of
//! `Retry-After` and the admin API). Pure: the clock is an argument.
//!
//! - `day`: from 00:00 UTC to the next; `week`: from Monday 00:00 UTC;
//!   `month`: from the 1st 00:00 UTC (calendar months, 28 to 31 days). One
//!   bucket per period, keyed by the period's start.
//! - a rolling `"<N>d"` / `"<N>h"` window of length `d`: [`ROLLING_BUCKETS`]
//!   buckets of `d / 30` each (`"30d"`: one a day, `"1h"`: two minutes),
//!   keyed by `floor(unix time / width)`. Spend counts while its bucket is
//!   one of the last 30, so it stops counting between `d - d/30` and `d`
//!   after it was made: a fixed-bucket approximation of the window.

use crate::keys::BudgetPeriod;

/// The buckets of a rolling window.
pub const ROLLING_BUCKETS: u64 = 30;

const DAY: u64 = 86_400;

/// Where an instant falls in a budget's period.
///
/// ```
/// use llm_router::layers::budget::Window;
/// use llm_router::layers::auth::BudgetPeriod;
///
/// // 2026-12-09T15:00:00Z, a Wednesday.
/// let now = 1_796_828_400;
/// let week = Window::of(BudgetPeriod::Week, now);
/// assert_eq!(week.current(), 1_796_601_600); // Monday 2026-12-07T00:00:00Z
/// assert_eq!(week.reset(), 1_797_206_400);   // the next Monday
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The bucket spend made now goes to.
    current: u64,
    /// The oldest bucket that still counts.
    oldest: u64,
    /// Rolling: the width of a bucket in seconds; 0 for a calendar period.
    width: u64,
    /// Calendar: when the period ends.
    end: u64,
}

impl Window {
    /// The window of `period` at `now` (Unix seconds).
    pub fn of(period: BudgetPeriod, now: u64) -> Window {
        let calendar = |start: u64, end: u64| Window {
            current: start,
            oldest: start,
            width: 0,
            end,
        };
        match period {
            BudgetPeriod::Day => {
                let start = now - now % DAY;
                calendar(start, start.saturating_add(DAY))
            }
            BudgetPeriod::Week => {
                let days = i128::from(now / DAY);
                // 1970-01-01 was a Thursday: Monday is 3 days earlier.
                let monday = days - (days + 3) % 7;
                let secs = |days: i128| u64::try_from(days * i128::from(DAY)).unwrap_or(0);
                calendar(secs(monday), secs(monday + 7))
            }
            BudgetPeriod::Month => {
                let (start, end) = month_of(now);
                calendar(start, end)
            }
            BudgetPeriod::Rolling(d) => {
                let width = (d.as_secs() / ROLLING_BUCKETS).max(1);
                let current = now / width;
                Window {
                    current,
                    oldest: current.saturating_sub(ROLLING_BUCKETS - 1),
                    width,
                    end: 0,
                }
            }
        }
    }

    /// The bucket spend made now goes to.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// The oldest bucket that still counts.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Whether spend in bucket `key` counts now.
    pub fn counts(&self, key: u64) -> bool {
        key >= self.oldest && key <= self.current
    }

    /// When spend in bucket `key` stops counting (Unix seconds).
    pub fn expires(&self, key: u64) -> u64 {
        if self.width == 0 {
            self.end
        } else {
            key.saturating_add(ROLLING_BUCKETS)
                .saturating_mul(self.width)
        }
    }

    /// When spend made now stops counting: the end of a calendar period,
    /// or `d` (at most) from now for a rolling window.
    pub fn reset(&self) -> u64 {
        self.expires(self.current)
    }
}

/// The start and end (Unix seconds) of the calendar month `now` is in.
fn month_of(now: u64) -> (u64, u64) {
    let fallback = {
        let start = now - now % DAY;
        (start, start.saturating_add(DAY))
    };
    let Ok(secs) = i64::try_from(now) else {
        return fallback;
    };
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return fallback;
    };
    let first = |year: i32, month: time::Month| {
        time::Date::from_calendar_date(year, month, 1)
            .ok()
            .and_then(|d| u64::try_from(d.midnight().assume_utc().unix_timestamp()).ok())
    };
    let (year, month) = (at.year(), at.month());
    let next_year = if month == time::Month::December {
        year.checked_add(1)
    } else {
        Some(year)
    };
    match (
        first(year, month),
        next_year.and_then(|y| first(y, month.next())),
    ) {
        (Some(start), Some(end)) => (start, end),
        _ => fallback,
    }
}

/// `2026-12-01T00:00:00Z`: a Unix time in RFC 3339, UTC.
pub(crate) fn rfc3339(secs: u64) -> String {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    match at {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => format!("@{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Unix seconds of a UTC date and time.
    fn at(y: i32, m: u8, d: u8, h: u8) -> u64 {
        let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
        let t = date.with_hms(h, 0, 0).unwrap().assume_utc();
        t.unix_timestamp() as u64
    }

    #[test]
    fn days_start_at_midnight_utc() {
        let w = Window::of(BudgetPeriod::Day, at(2026, 12, 9, 15) + 59);
        assert_eq!(w.current(), at(2026, 12, 9, 0));
        assert_eq!(w.reset(), at(2026, 12, 10, 0));
        assert_eq!(w.oldest(), w.current());
        // The last second of a day is still in it.
        let w = Window::of(BudgetPeriod::Day, at(2026, 12, 10, 0) - 1);
        assert_eq!(w.current(), at(2026, 12, 9, 0));
        assert_eq!(
            Window::of(BudgetPeriod::Day, at(2026, 12, 10, 0)).current(),
            at(2026, 12, 10, 0)
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-12-07 is a Monday; the 13th a Sunday.
        for day in 7..=13 {
            let w = Window::of(BudgetPeriod::Week, at(2026, 12, day, 23));
            assert_eq!(w.current(), at(2026, 12, 7, 0), "day {day}");
            assert_eq!(w.reset(), at(2026, 12, 14, 0));
        }
        assert_eq!(
            Window::of(BudgetPeriod::Week, at(2026, 12, 14, 0)).current(),
            at(2026, 12, 14, 0)
        );
        // Across a year's end: 2027-01-01 is a Friday.
        assert_eq!(
            Window::of(BudgetPeriod::Week, at(2027, 1, 1, 12)).current(),
            at(2026, 12, 28, 0)
        );
        // The epoch's own week (it began on Monday 1969-12-29).
        assert_eq!(Window::of(BudgetPeriod::Week, 0).current(), 0);
        assert_eq!(Window::of(BudgetPeriod::Week, 0).reset(), 4 * DAY);
    }

    #[test]
    fn months_are_calendar_months() {
        let w = Window::of(BudgetPeriod::Month, at(2026, 12, 31, 23));
        assert_eq!(w.current(), at(2026, 12, 1, 0));
        assert_eq!(w.reset(), at(2027, 1, 1, 0));
        let feb = Window::of(BudgetPeriod::Month, at(2028, 2, 29, 1));
        assert_eq!(feb.current(), at(2028, 2, 1, 0));
        assert_eq!(feb.reset(), at(2028, 3, 1, 0));
        assert_eq!(feb.reset() - feb.current(), 29 * DAY);
        let jan = Window::of(BudgetPeriod::Month, at(2027, 1, 1, 0));
        assert_eq!(jan.current(), at(2027, 1, 1, 0));
    }

    #[test]
    fn rolling_windows_are_thirty_buckets() {
        let d = BudgetPeriod::Rolling(Duration::from_secs(30 * DAY));
        let now = at(2026, 12, 9, 15);
        let w = Window::of(d, now);
        assert_eq!(w.current(), now / DAY);
        assert_eq!(w.oldest(), now / DAY - 29);
        assert!(w.counts(w.current()) && w.counts(w.oldest()));
        assert!(!w.counts(w.oldest() - 1) && !w.counts(w.current() + 1));
        // Spend made now counts until its bucket is 30 buckets old.
        assert_eq!(w.reset(), (now / DAY + 30) * DAY);
        assert!(w.reset() - now <= 30 * DAY && w.reset() - now > 29 * DAY);
        assert_eq!(w.expires(w.oldest()), (now / DAY + 1) * DAY);
        let hour = Window::of(BudgetPeriod::Rolling(Duration::from_secs(3600)), 7200);
        assert_eq!(hour.current(), 60);
        assert_eq!(hour.reset(), 90 * 120);
        // Early in the epoch there are fewer buckets behind.
        assert_eq!(Window::of(d, 5).oldest(), 0);
    }

    #[test]
    fn any_instant_has_a_window_that_holds_it() {
        for period in [
            BudgetPeriod::Day,
            BudgetPeriod::Week,
            BudgetPeriod::Month,
            BudgetPeriod::Rolling(Duration::from_secs(7 * DAY)),
        ] {
            for now in [0, 1, 86_399, 1_797_174_000, u64::from(u32::MAX), u64::MAX] {
                let w = Window::of(period, now);
                assert!(w.counts(w.current()));
                if now < 1 << 40 {
                    assert!(w.reset() > now, "{period} {now}");
                }
            }
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339(at(2027, 1, 1, 0)), "2027-01-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), format!("@{}", u64::MAX));
    }
}
