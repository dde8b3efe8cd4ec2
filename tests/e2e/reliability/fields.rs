//! Structure-aware mutation of every decoder through the binary: a real volume with
//! objects, one FIELD of a superblock, a metadata block header, the object table or a
//! pattern header changed to a boundary value (0, 1, the width's maximum, off by one,
//! doubled), slots swapped or taken from another volume, with the checksums
//! recomputed so the field checks are what judges the bytes. Every read-only command
//! (`ls`, `info`, `verify`, `read`) then runs as a time-bounded child: no panic, no
//! "internal error", no hang, and all commands agree on the verdict (could the volume
//! be opened, which slot is in use, which slots are usable).

use std::process::Stdio;
use std::time::{Duration, Instant};

use stack_csum::Algorithm;
use stack_volume::format::fields::{
    get, probe_values, reseal_meta_block, reseal_pattern_header, reseal_superblock, set,
    table_fields, Field, META_HEADER_FIELDS, PATTERN_HEADER_FIELDS, SUPERBLOCK_FIELDS,
};
use stack_volume::format::{
    decode_meta_stream, payload_per_block, uuid_salt, MetaKind, ObjectTable, Superblock,
    SB_SLOT_OFFSETS,
};

use crate::cli::harness::{bytes, pattern_blocks, Run, Scratch};

const BS: usize = 4096;
/// Bound of one command on a 2 MiB volume (a hang, not a timing assertion).
const COMMAND_BOUND: Duration = Duration::from_secs(60);

/// The base volume's layout: its image and where each structure lies.
struct Base {
    image: Vec<u8>,
    algorithm: Algorithm,
    salt: u64,
    /// Both slots' superblocks (slot order).
    sbs: [Superblock; 2],
    /// The newest slot's table payload.
    payload: Vec<u8>,
    /// First checksum block of the newest table's first run.
    csum_block: u64,
    /// Byte offset of a pattern data block.
    pattern_at: usize,
    /// Another volume's slot 0 block.
    foreign: Vec<u8>,
}

fn build_base(s: &Scratch) -> Base {
    s.volume("base.img", "2MiB");
    std::fs::write(s.path("a.bin"), bytes(20_000, 1)).unwrap();
    s.expect(0, &["write", "base.img", "a.bin", "--name", "file-a"]);
    s.expect(
        0,
        &[
            "write",
            "base.img",
            "--pattern",
            "--size",
            "64K",
            "--seed",
            "3",
            "--name",
            "pat",
        ],
    );
    s.expect(0, &["write", "base.img", "a.bin", "--name", "gone"]);
    s.expect(0, &["rm", "base.img", "gone"]);
    std::fs::write(s.path("b.bin"), bytes(5_000, 2)).unwrap();
    s.expect(0, &["write", "base.img", "b.bin", "--name", "file-b"]);
    s.volume("other.img", "2MiB");
    let image = std::fs::read(s.path("base.img")).unwrap();
    let foreign = std::fs::read(s.path("other.img")).unwrap()[..BS].to_vec();
    let sbs = [0u8, 1].map(|slot| {
        let at = SB_SLOT_OFFSETS[usize::from(slot)] as usize;
        Superblock::decode(&image[at..at + BS], slot).expect("base superblock")
    });
    let newest = *sbs.iter().max_by_key(|sb| sb.generation).unwrap();
    let salt = uuid_salt(&newest.uuid);
    let start = newest.meta_start_block as usize;
    let mut payload = Vec::new();
    decode_meta_stream(
        &image[start * BS..(start + newest.meta_blocks as usize) * BS],
        newest.meta_start_block,
        MetaKind::ObjectTable,
        newest.generation,
        newest.meta_len_bytes,
        newest.algorithm,
        salt,
        BS as u32,
        &mut payload,
    )
    .expect("base table");
    let table = ObjectTable::decode(
        &payload,
        newest.generation,
        newest.total_blocks,
        BS as u32,
        newest.algorithm.width_bytes(),
        newest.meta_start_block,
    )
    .expect("base table");
    assert_eq!(table.objects.len(), 3);
    let pattern_at = pattern_blocks(&image, BS)[3];
    Base {
        algorithm: newest.algorithm,
        salt,
        sbs,
        csum_block: table.objects[0].runs[0].csum_start_block,
        payload,
        pattern_at,
        foreign,
        image,
    }
}

/// Applies one mutation to a copy of the base image.
type Mutation = Box<dyn Fn(&Base, &mut [u8]) + Send + Sync>;

/// One mutation of the base image.
struct Case {
    label: String,
    apply: Mutation,
}

fn case(label: String, apply: impl Fn(&Base, &mut [u8]) + Send + Sync + 'static) -> Case {
    Case {
        label,
        apply: Box::new(apply),
    }
}

/// Sets `field` of the superblock in `slot` and reseals it.
fn superblock_field(image: &mut [u8], slot: usize, field: Field, value: u64) {
    let at = SB_SLOT_OFFSETS[slot] as usize;
    set(&mut image[at..at + BS], field, value);
    reseal_superblock(&mut image[at..at + BS]);
}

/// Sets `field` of the header of metadata block `block` and reseals it.
fn meta_field(base: &Base, image: &mut [u8], block: u64, field: Field, value: u64) {
    let at = block as usize * BS;
    let b = &mut image[at..at + BS];
    set(b, field, value);
    reseal_meta_block(b, block, base.algorithm, base.salt);
}

/// Sets `field` of the newest table's payload and reseals the block it lies in.
fn table_field(base: &Base, image: &mut [u8], field: Field, value: u64) {
    let newest = base.sbs.iter().max_by_key(|sb| sb.generation).unwrap();
    let per = payload_per_block(BS as u32);
    for i in 0..field.width {
        let off = field.at + i;
        let block = newest.meta_start_block + (off / per) as u64;
        let in_block = 48 + off % per;
        image[block as usize * BS + in_block] = value.to_le_bytes()[i.min(7)];
        let at = block as usize * BS;
        reseal_meta_block(&mut image[at..at + BS], block, base.algorithm, base.salt);
    }
}

/// Values for a field holding `value`: the edges, off by one, doubled.
fn values(value: u64, width: usize) -> Vec<u64> {
    let mut v = probe_values(value, width);
    // Keep the run short: the extremes and the neighbours of the value.
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1 << (8 * width)) - 1
    };
    v.retain(|&x| {
        x == 0
            || x == 1
            || x == max
            || x == value.wrapping_sub(1) & max
            || x == value.wrapping_add(1) & max
            || x == value.wrapping_mul(2) & max
    });
    v
}

fn cases(base: &Base) -> Vec<Case> {
    let mut out = Vec::new();
    // Superblock fields of both slots, plus geometry values around the device's size
    // and the format's limit.
    for (slot, at) in SB_SLOT_OFFSETS.iter().enumerate() {
        let sb_bytes = &base.image[*at as usize..][..BS];
        for field in SUPERBLOCK_FIELDS {
            let mut vals = values(get(sb_bytes, field), field.width);
            if field.name == "total_blocks" {
                let limit = stack_volume::format::MAX_TOTAL_BLOCKS;
                vals.extend([
                    511,
                    513,
                    4096,
                    1 << 32,
                    1 << 63,
                    limit,
                    limit + 1,
                    u64::MAX - 1,
                ]);
            }
            for v in vals {
                out.push(case(
                    format!("superblock slot {slot} {} = {v:#x}", field.name),
                    move |_, image| superblock_field(image, slot, field, v),
                ));
            }
        }
    }
    // Whole-slot mutations: swapped, duplicated, from another volume.
    let slot_range =
        |slot: usize| SB_SLOT_OFFSETS[slot] as usize..SB_SLOT_OFFSETS[slot] as usize + BS;
    out.push(case("slots swapped verbatim".into(), move |b, image| {
        image[slot_range(0)].copy_from_slice(&b.image[slot_range(1)]);
        image[slot_range(1)].copy_from_slice(&b.image[slot_range(0)]);
    }));
    out.push(case(
        "slots swapped, slot fields fixed".into(),
        move |b, image| {
            image[slot_range(0)].copy_from_slice(&b.image[slot_range(1)]);
            image[slot_range(1)].copy_from_slice(&b.image[slot_range(0)]);
            superblock_field(image, 0, SUPERBLOCK_FIELDS[7], 0);
            superblock_field(image, 1, SUPERBLOCK_FIELDS[7], 1);
        },
    ));
    for slot in 0..2 {
        out.push(case(
            format!("slot {slot} copied over the other"),
            move |b, image| {
                image[slot_range(1 - slot)].copy_from_slice(&b.image[slot_range(slot)]);
                superblock_field(image, 1 - slot, SUPERBLOCK_FIELDS[7], (1 - slot) as u64);
            },
        ));
        out.push(case(
            format!("slot {slot} with another volume's uuid"),
            move |b, image| {
                for field in [SUPERBLOCK_FIELDS[3], SUPERBLOCK_FIELDS[4]] {
                    superblock_field(image, slot, field, get(&b.foreign, field));
                }
            },
        ));
        out.push(case(
            format!("slot {slot} from another volume"),
            move |b, image| {
                image[slot_range(slot)].copy_from_slice(&b.foreign);
                superblock_field(image, slot, SUPERBLOCK_FIELDS[7], slot as u64);
            },
        ));
    }
    // Metadata block headers: both tables' first blocks and a checksum block.
    let mut meta_blocks: Vec<(String, u64)> = base
        .sbs
        .iter()
        .map(|sb| {
            (
                format!("table of generation {}", sb.generation),
                sb.meta_start_block,
            )
        })
        .collect();
    meta_blocks.push(("checksum block".into(), base.csum_block));
    for (what, block) in meta_blocks {
        let header = &base.image[block as usize * BS..][..48];
        for field in META_HEADER_FIELDS {
            for v in values(get(header, field), field.width) {
                out.push(case(
                    format!("{what} (block {block}) header {} = {v:#x}", field.name),
                    move |b, image| meta_field(b, image, block, field, v),
                ));
            }
        }
    }
    // Object table fields of the newest table.
    for field in table_fields(&base.payload) {
        for v in values(get(&base.payload, field), field.width) {
            out.push(case(
                format!("table {} at {} = {v:#x}", field.name, field.at),
                move |b, image| table_field(b, image, field, v),
            ));
        }
    }
    // Pattern block header fields.
    for field in PATTERN_HEADER_FIELDS {
        let header = &base.image[base.pattern_at..][..64];
        for v in values(get(header, field), field.width) {
            out.push(case(
                format!("pattern header {} = {v:#x}", field.name),
                move |b, image| {
                    let block = &mut image[b.pattern_at..b.pattern_at + BS];
                    set(block, field, v);
                    reseal_pattern_header(block);
                },
            ));
        }
    }
    out
}

/// Runs the binary with `args` as a child bounded by `COMMAND_BOUND`.
fn bounded(s: &Scratch, args: &[&str]) -> Result<Run, String> {
    let mut child = s
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stackctl");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waiting").is_some() {
            break;
        }
        if started.elapsed() > COMMAND_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{args:?} did not finish within {COMMAND_BOUND:?} (hang)"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let output = child.wait_with_output().expect("output");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // `from_output` asserts: no panic, no backtrace, no "internal error".
    std::panic::catch_unwind(|| Run::from_output(output, &args)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a rule every run obeys was broken".into())
    })
}

/// What a command says about the volume: opened (slot in use, each slot's state), or
/// not (exit 3).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Opened([String; 2]),
    NotOpened,
}

fn slot_states(doc: &serde_json::Value) -> [String; 2] {
    [0, 1].map(|i| {
        doc["superblocks"][i]["state"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    })
}

/// Runs every read-only command on `image`; returns what went wrong, if anything.
fn check(s: &Scratch, image: &[u8], names: &[&str]) -> Result<String, String> {
    std::fs::write(s.path("v.img"), image).unwrap();
    let info = bounded(s, &["--json", "info", "v.img"])?;
    let verify = bounded(s, &["--json", "verify", "v.img"])?;
    let ls = bounded(s, &["--json", "ls", "v.img"])?;
    let verdict = |run: &Run, what: &str, ok: &[i32]| -> Result<Verdict, String> {
        match run.code {
            3 => Ok(Verdict::NotOpened),
            c if ok.contains(&c) => Ok(Verdict::Opened(slot_states(&run.json()))),
            c => Err(format!("{what} exited {c}: {}", run.stderr)),
        }
    };
    let v_info = verdict(&info, "info", &[0, 1])?;
    let v_verify = verdict(&verify, "verify", &[0, 1])?;
    if v_info != v_verify {
        return Err(format!(
            "info and verify disagree: {v_info:?} vs {v_verify:?}\n{}\n{}",
            info.stdout, verify.stdout
        ));
    }
    let listed: Vec<String> = match (&v_info, ls.code) {
        (Verdict::NotOpened, 3) => Vec::new(),
        (Verdict::Opened(states), code @ (0 | 1)) => {
            let doc = ls.json();
            let damaged = states.iter().any(|s| s != "ok");
            if damaged != (code == 1) || damaged != doc["warning"].is_string() {
                return Err(format!(
                    "ls exit {code} / warning {} but slots {states:?}",
                    doc["warning"]
                ));
            }
            let info_doc = info.json();
            let count = doc["objects"].as_array().map_or(0, Vec::len);
            if info_doc["objects"] != count as u64 {
                return Err(format!(
                    "ls lists {count} objects, info counts {}",
                    info_doc["objects"]
                ));
            }
            if info_doc["superblocks"][info_doc["superblock_slot"].as_u64().unwrap_or(9) as usize]
                ["state"]
                != "ok"
            {
                return Err(format!("info uses a slot it calls unusable: {info_doc}"));
            }
            if verify.code == 0 && damaged {
                return Err("verify clean with a damaged slot".into());
            }
            doc["objects"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|o| o["name"].as_str().map(str::to_string))
                .collect()
        }
        (v, code) => {
            return Err(format!(
                "ls exited {code} where info says {v:?}: {}",
                ls.stderr
            ))
        }
    };
    for name in names {
        let _ = std::fs::remove_file(s.path("out.bin"));
        let read = bounded(s, &["read", "v.img", name, "-o", "out.bin"])?;
        let expected: &[i32] = if v_info == Verdict::NotOpened {
            &[3]
        } else if listed.iter().any(|l| l == name) {
            &[0, 1, 3]
        } else {
            &[3]
        };
        if !expected.contains(&read.code) {
            return Err(format!("read {name} exited {}: {}", read.code, read.stderr));
        }
        // On a volume opened from its older copy, read copies the object out and exits
        // 1 (a fallback is damage for every command); otherwise a failed read leaves
        // no output.
        let fallback =
            matches!(&v_info, Verdict::Opened(states) if states.iter().any(|s| s != "ok"));
        let may_leave_output = read.code == 0 || (read.code == 1 && fallback);
        if !may_leave_output && s.path("out.bin").exists() {
            return Err(format!("read {name} failed but left its output"));
        }
    }
    Ok(format!("{v_info:?} verify {}", verify.code))
}

#[test]
fn field_mutations_through_every_read_only_command_agree_and_never_crash() {
    let s = Scratch::new();
    let base = std::sync::Arc::new(build_base(&s));
    let all = std::sync::Arc::new(cases(&base));
    assert!(all.len() > 300, "{} cases", all.len());
    // The unmutated volume is clean for every command.
    assert_eq!(
        check(&s, &base.image, &["file-a", "pat", "file-b"]).unwrap(),
        r#"Opened(["ok", "ok"]) verify 0"#
    );
    // Two workers (the machine has two cores), each in its own directory.
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (base, all) = (base.clone(), all.clone());
            std::thread::spawn(move || {
                let s = Scratch::new();
                let mut failures = Vec::new();
                let mut opened = 0;
                for c in all.iter().skip(w).step_by(2) {
                    let mut image = base.image.clone();
                    (c.apply)(&base, &mut image);
                    match check(&s, &image, &["file-a", "pat", "file-b"]) {
                        Ok(v) => opened += usize::from(v.starts_with("Opened")),
                        Err(why) => failures.push(format!("{}: {why}", c.label)),
                    }
                }
                (failures, opened)
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut opened = 0;
    for w in workers {
        let (f, o) = w.join().expect("worker");
        failures.extend(f);
        opened += o;
    }
    assert!(
        failures.is_empty(),
        "{} of {} field mutations failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    // Most single-field forgeries leave one usable slot: the volume still opens.
    assert!(
        opened * 2 > all.len(),
        "only {opened} of {} cases opened",
        all.len()
    );
}
