//! Sizes on the command line: `4096`, `4K`, `64MiB`, `1.5G`, `1GB`, and their display.
//!
//! The units follow GNU `dd` (and fio's default `kb_base=1024`): a bare letter or the
//! IEC form is a power of 1024 (`K` = `KiB` = 1024), the SI form with `B` is a power of
//! 1000 (`KB` = 1000). Units are case-insensitive except that nothing else is special;
//! `B` alone (or no unit) means bytes. A decimal fraction is accepted when the result
//! is a whole number of bytes (`1.5K` = 1536, `0.5B` is an error).

use std::fmt;

/// The forms a size may take, shown in every parse error.
pub const ACCEPTED_FORMS: &str =
    "a byte count with an optional unit, e.g. 4096, 4K, 64MiB, 1.5G, 1GB \
     (K/M/G/T/P and KiB..PiB are powers of 1024; KB/MB/GB/TB/PB are powers of 1000)";

/// Why a size string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid size '{}': {}; expected {}",
            self.input, self.reason, ACCEPTED_FORMS
        )
    }
}

impl std::error::Error for SizeError {}

/// Multiplier of a unit suffix (already lower-cased), or `None` if unknown.
fn unit_multiplier(unit: &str) -> Option<u64> {
    const KI: u64 = 1 << 10;
    const KD: u64 = 1000;
    let m = match unit {
        "" | "b" => 1,
        "k" | "kib" => KI,
        "m" | "mib" => KI.pow(2),
        "g" | "gib" => KI.pow(3),
        "t" | "tib" => KI.pow(4),
        "p" | "pib" => KI.pow(5),
        "kb" => KD,
        "mb" => KD.pow(2),
        "gb" => KD.pow(3),
        "tb" => KD.pow(4),
        "pb" => KD.pow(5),
        _ => return None,
    };
    Some(m)
}

/// Parses a size such as `64MiB` into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = |reason: &'static str| SizeError {
        input: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(err("it is empty"));
    }
    let number_len = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_len);
    if number.is_empty() {
        return Err(err("it does not start with a number"));
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let multiplier = unit_multiplier(&unit).ok_or_else(|| err("unknown unit"))?;

    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if fraction.contains('.') {
        return Err(err("it has more than one decimal point"));
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err(err("it does not start with a number"));
    }
    // 19 digits always fit in u64; more fraction digits than that cannot matter for
    // a multiplier of at most 2^50, but they would overflow the scale, so refuse them.
    if fraction.len() > 18 {
        return Err(err("the fraction has too many digits"));
    }
    let whole_value: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| err("the number is too large"))?
    };
    let mut bytes = whole_value
        .checked_mul(multiplier)
        .ok_or_else(|| err("the size is too large"))?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(fraction.len() as u32);
        let numerator: u128 = fraction.parse().map_err(|_| err("bad fraction"))?;
        let scaled = numerator * u128::from(multiplier);
        if scaled % scale != 0 {
            return Err(err("it is not a whole number of bytes"));
        }
        let extra = u64::try_from(scaled / scale).map_err(|_| err("the size is too large"))?;
        bytes = bytes
            .checked_add(extra)
            .ok_or_else(|| err("the size is too large"))?;
    }
    Ok(bytes)
}

/// A clap value parser for sizes.
pub fn size_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| {
        // clap prefixes "invalid value '<text>' for '<arg>': ", so skip our own prefix.
        format!("{}; expected {}", e.reason, ACCEPTED_FORMS)
    })
}

/// Formats bytes for people: `0 B`, `512 B`, `4.0 KiB`, `1.50 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit_index = 0;
    while value >= 1024.0 && unit_index + 1 < UNITS.len() {
        value /= 1024.0;
        unit_index += 1;
    }
    let precision = if value < 10.0 { 2 } else { 1 };
    format!("{value:.precision$} {}", UNITS[unit_index])
}

/// Formats a rate for people: `123.4 MiB/s`; `-` when no time elapsed.
pub fn human_rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 || !seconds.is_finite() {
        return "-".to_string();
    }
    let rate = (bytes as f64 / seconds).round() as u64;
    format!("{}/s", human_bytes(rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_of_accepted_forms() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4096B", 4096),
            ("4096b", 4096),
            ("4K", 4096),
            ("4k", 4096),
            ("4KiB", 4096),
            ("4kib", 4096),
            ("4KB", 4000),
            ("4kB", 4000),
            ("64MiB", 64 << 20),
            ("64M", 64 << 20),
            ("64MB", 64_000_000),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("1GB", 1_000_000_000),
            ("2T", 2 << 40),
            ("2TiB", 2 << 40),
            ("2TB", 2_000_000_000_000),
            ("1P", 1 << 50),
            ("1PB", 1_000_000_000_000_000),
            ("1.5K", 1536),
            ("1.5GiB", 3 << 29),
            ("0.5M", 512 << 10),
            (".5K", 512),
            ("3.", 3),
            (" 8 MiB ", 8 << 20),
            ("18446744073709551615", u64::MAX),
            ("16383P", 16383 << 50),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn table_of_rejected_forms() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("K", "does not start"),
            ("MiB", "does not start"),
            ("-1", "does not start"),
            ("+1", "does not start"),
            (".", "does not start"),
            ("4X", "unknown unit"),
            ("4 KiBs", "unknown unit"),
            ("4Ki", "unknown unit"),
            ("4KK", "unknown unit"),
            ("1e6", "unknown unit"),
            ("0x10", "unknown unit"),
            ("1.2.3", "more than one decimal point"),
            ("0.5B", "whole number"),
            ("1.1K", "whole number"),
            ("18446744073709551616", "too large"),
            ("16384P", "too large"),
            ("17179869184G", "too large"),
            ("16383.9999P", "whole number"),
            ("1.0000000000000000000K", "too many digits"),
        ];
        for &(text, reason) in cases {
            let err = parse_size(text).expect_err(text);
            assert!(err.reason.contains(reason), "{text}: {}", err.reason);
            let shown = err.to_string();
            assert!(
                shown.contains("64MiB"),
                "error shows an accepted form: {shown}"
            );
            assert!(shown.contains(text), "error names the input: {shown}");
        }
    }

    #[test]
    fn human_forms() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.00 KiB");
        assert_eq!(human_bytes(256 << 20), "256.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_rate(1 << 20, 1.0), "1.00 MiB/s");
        assert_eq!(human_rate(1 << 20, 0.0), "-");
    }

    proptest! {
        #[test]
        fn every_unit_round_trips(n in 0u64..1_000_000, unit_index in 0usize..11) {
            let units = ["", "B", "K", "KiB", "M", "MiB", "G", "GiB", "KB", "MB", "GB"];
            let unit = units[unit_index];
            let multiplier = unit_multiplier(&unit.to_ascii_lowercase()).unwrap();
            prop_assert_eq!(parse_size(&format!("{n}{unit}")), Ok(n * multiplier));
            prop_assert_eq!(parse_size(&format!("{n}{}", unit.to_ascii_lowercase())), Ok(n * multiplier));
        }

        #[test]
        fn plain_bytes_round_trip(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = parse_size(&text);
        }

        #[test]
        fn fractions_are_exact(whole in 0u64..100_000, half in any::<bool>()) {
            let text = format!("{whole}.{}K", if half { 5 } else { 0 });
            prop_assert_eq!(parse_size(&text), Ok(whole * 1024 + if half { 512 } else { 0 }));
        }
    }
}
