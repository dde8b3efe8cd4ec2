//! Fake capacity through the CLI: `verify` of a wrapped image gives the verdict with the
//! exact usable size and leads its summary with it (exit 1); `burn-in` of a good file is
//! clean and reads its canaries. A file cannot wrap, so the burn-in that stops early on
//! a fake is tested in the library (`volume::fake`), on `FaultyDevice::counterfeit`.

use std::sync::Arc;

use stack_bio::{FaultyDevice, MemDevice};
use stack_volume::{FormatOptions, Volume, WriteOptions};

use super::harness::Scratch;

const MIB: u64 = 1 << 20;

/// What a 128 MiB drive holding 32 MiB shows after a burn-in's fill: a file whose byte
/// `o` is the real media's byte `o mod 32 MiB`, as every read of the fake returns.
fn wrapped_image(s: &Scratch) -> String {
    let real = Arc::new(MemDevice::new(32 * MIB));
    let dev = Arc::new(FaultyDevice::counterfeit(real.clone(), 128 * MIB));
    let mut vol = Volume::format_device(dev, &FormatOptions::default()).unwrap();
    let fill = vol.fill("burn-in", 5, &WriteOptions::default()).unwrap();
    assert!(fill.stopped_early, "{fill:?}");
    drop(vol);
    let media = real.snapshot();
    let image: Vec<u8> = media.repeat(4);
    std::fs::write(s.path("fake.img"), image).unwrap();
    "fake.img".to_string()
}

/// What broke: verify of a wrapping drive listed misdirected ranges and gave neither a
/// verdict nor the size it really holds.
#[test]
fn verify_of_a_wrapped_image_states_fake_capacity_and_the_usable_size() {
    let s = Scratch::new();
    let image = wrapped_image(&s);
    let doc = s.json(1, &["verify", &image]);
    let verdict = &doc["verdict"];
    assert_eq!(verdict["kind"], "fake-capacity", "{doc}");
    assert_eq!(verdict["usable_bytes"], 32 * MIB);
    assert_eq!(verdict["advertised_bytes"], 128 * MIB);
    assert!(verdict["evidence"][0]
        .as_str()
        .unwrap()
        .contains("wraps around every 33554432 bytes"));
    let run = s.expect(1, &["verify", &image]);
    assert!(
        run.stdout
            .starts_with("FAKE CAPACITY: holds 32.0 MiB of the 128.0 MiB it reports"),
        "{}",
        run.stdout
    );
}

#[test]
fn burn_in_of_a_good_file_is_clean_and_reads_canaries() {
    let s = Scratch::new();
    let f = s.path("good.img");
    std::fs::File::create(&f)
        .unwrap()
        .set_len(160 * MIB)
        .unwrap();
    let doc = s.json(0, &["burn-in", "good.img", "--force"]);
    assert_eq!(doc["verdict"]["kind"], "clean", "{doc}");
    assert_eq!(doc["verify"]["verdict"]["kind"], "clean");
    assert!(
        doc["write"]["canaries_read"].as_u64().unwrap() >= 16,
        "{doc}"
    );
    assert_eq!(doc["write"]["canary_failed"], serde_json::Value::Null);
    let doc = s.json(0, &["burn-in", "good.img", "--force", "--no-canaries"]);
    assert_eq!(doc["write"]["canaries_read"], 0);
}
