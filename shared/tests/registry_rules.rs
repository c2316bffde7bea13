//! The shipped alert rules include the health-probe rule (issue 13 item 4).

use flowscope_core::alerts::rules::{Aggregation, Condition, Signal};
use flowscope_core::alerts::RuleSet;
use flowscope_core::registry::probe::{INSTANCE_ATTRIBUTE, UP_METRIC};

#[test]
fn the_shipped_rules_alert_on_failed_health_probes_per_instance() {
    let set = RuleSet::shipped().expect("the shipped rules are valid");
    let rule = set.rule("instance-down").expect("an instance-down rule");
    assert!(matches!(&rule.signal, Signal::Series(s) if s.metric == UP_METRIC));
    assert_eq!(rule.aggregation, Aggregation::Avg);
    assert_eq!(rule.condition, Condition::Below);
    assert_eq!(rule.warning, Some(100.0));
    assert_eq!(rule.critical, Some(50.0));
    assert_eq!(rule.group_by, vec![INSTANCE_ATTRIBUTE.to_string()]);
}
