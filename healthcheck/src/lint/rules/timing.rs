//! HC007 and HC008: start-up timing that Docker silently ignores or that covers no check.

use super::super::finding::{Finding, format_secs};
use super::super::model::{Project, Role};
use super::common::{check_key, finding};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        for c in unit
            .checks
            .iter()
            .filter(|c| c.role == Role::Docker && c.execs())
        {
            let key = check_key(c);
            let period = c.start_period.filter(|p| !p.is_zero());
            if let (Some(si), None) = (c.start_interval, period) {
                out.push(finding(
                    "HC007",
                    unit,
                    &format!("{key}.start_interval"),
                    &c.at,
                    format!(
                        "{}: {key}.start_interval: {} without start_period: Docker ignores it, start-up checks run every {}",
                        unit.name,
                        format_secs(si),
                        format_secs(c.interval_or_default())
                    ),
                ));
            }
            let interval = c.interval_or_default();
            if let (Some(p), None) = (period, c.start_interval)
                && p < interval
            {
                out.push(finding(
                    "HC008",
                    unit,
                    &format!("{key}.start_period"),
                    &c.at,
                    format!(
                        "{}: {key}.start_period: {} ends before the first check at {} (interval): it covers no check",
                        unit.name,
                        format_secs(p),
                        format_secs(interval)
                    ),
                ));
            }
        }
    }
}
