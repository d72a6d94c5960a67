//! Thread-top panic guards: every long-lived thread catches a panic at its
//! top and reports it; this is the one place that turns the payload into text.

/// The text of a caught panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_and_string_payloads_are_read() {
        let p = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
        assert_eq!(panic_message(&*p), "boom");
        let p = std::panic::catch_unwind(|| panic!("{}", String::from("x"))).unwrap_err();
        assert_eq!(panic_message(&*p), "x");
    }
}
