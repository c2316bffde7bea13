//! This process's memory, as benches and memory tests print and bound it.

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:` …) in KiB; 0 where there is none (not
/// Linux, or an unknown field).
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resident_set_is_read_and_an_unknown_field_is_zero() {
        if cfg!(target_os = "linux") {
            assert!(super::proc_status_kib("VmRSS:") > 0);
            assert!(super::proc_status_kib("VmHWM:") >= super::proc_status_kib("VmRSS:") / 2);
        }
        assert_eq!(super::proc_status_kib("NoSuchField:"), 0);
    }
}
