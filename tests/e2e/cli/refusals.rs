//! `format` and `burn-in` refuse a target that carries a filesystem, swap, partition
//! table, LUKS header or other content they did not write, saying what and where;
//! `--force` overrides. `write` refuses an existing name; `read` never writes outside
//! the place asked for.

use super::harness::{bytes, Scratch};

/// (what the refusal names, offset, bytes at that offset).
const SIGNATURES: &[(&str, u64, &[u8])] = &[
    ("ext2/3/4", 1080, &[0x53, 0xef]),
    ("XFS", 0, b"XFSB"),
    ("btrfs", 65600, b"_BHRfS_M"),
    ("swap", 4086, b"SWAPSPACE2"),
    ("MBR", 510, &[0x55, 0xaa]),
    ("GPT", 512, b"EFI PART"),
    ("LUKS", 0, b"LUKS\xba\xbe"),
    ("ISO 9660", 32769, b"CD001"),
    ("LVM", 512, b"LABELONE"),
    ("squashfs", 0, b"hsqs"),
];

#[test]
fn each_signature_is_refused_with_what_and_where() {
    let s = Scratch::new();
    for &(what, offset, magic) in SIGNATURES {
        for command in ["format", "burn-in"] {
            let image = s.path("disk.img");
            let mut content = vec![0u8; 2 << 20];
            content[offset as usize..offset as usize + magic.len()].copy_from_slice(magic);
            std::fs::write(&image, &content).unwrap();
            let run = s.expect(3, &[command, "disk.img"]);
            assert!(run.stderr.contains(what), "{what}: {}", run.stderr);
            assert!(
                run.stderr.contains(&format!("at byte {offset}")),
                "{what}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("--force"), "{}", run.stderr);
            assert_eq!(
                std::fs::read(&image).unwrap(),
                content,
                "{what}: refused, yet written"
            );
        }
    }
}

#[test]
fn other_content_is_refused_and_force_overrides() {
    let s = Scratch::new();
    let mut content = vec![0u8; 3 << 20];
    content[123_457] = 7;
    std::fs::write(s.path("data.img"), &content).unwrap();
    let run = s.expect(3, &["format", "data.img"]);
    assert!(
        run.stderr.contains("non-zero data") && run.stderr.contains("byte 123457"),
        "{}",
        run.stderr
    );
    // Content only in the last MiB is found too.
    let mut tail = vec![0u8; 3 << 20];
    tail[(3 << 20) - 10] = 1;
    std::fs::write(s.path("tail.img"), &tail).unwrap();
    let run = s.expect(3, &["burn-in", "tail.img"]);
    assert!(
        run.stderr.contains(&format!("byte {}", (3 << 20) - 10)),
        "{}",
        run.stderr
    );

    let doc = s.json(0, &["format", "data.img", "--force"]);
    assert_eq!(
        doc["forced_over"][0],
        "non-zero data that is not a stackctl volume at byte 123457"
    );
    let doc = s.json(0, &["burn-in", "tail.img", "--force"]);
    assert_eq!(doc["clean"], true);
    // An all-zero existing file needs no --force.
    std::fs::write(s.path("zero.img"), vec![0u8; 2 << 20]).unwrap();
    s.expect(0, &["format", "zero.img"]);
}

#[test]
fn read_never_writes_outside_the_place_asked() {
    let s = Scratch::new();
    s.volume("v.img", "4MiB");
    std::fs::create_dir(s.path("inside")).unwrap();
    std::fs::write(s.path("data"), b"secret").unwrap();
    for name in ["../escaped", "a/b", "..", "/tmp/abs"] {
        s.expect(0, &["write", "v.img", "data", "--name", name]);
        // No -o, and -o DIR: the name would leave the directory; refused.
        let run = s.expect(2, &["read", "v.img", name]);
        assert!(run.stderr.contains("-o FILE"), "{}", run.stderr);
        s.expect(2, &["read", "v.img", name, "-o", "inside"]);
        // An explicit file is fine.
        s.expect(0, &["read", "v.img", name, "-o", "inside/explicit"]);
        assert_eq!(std::fs::read(s.path("inside/explicit")).unwrap(), b"secret");
    }
    assert!(!s.dir.path().parent().unwrap().join("escaped").exists());
    assert!(!std::path::Path::new("/tmp/abs").exists());

    // A derived name never replaces an existing file.
    s.expect(0, &["write", "v.img", "data", "--name", "plain"]);
    std::fs::write(s.path("inside/plain"), b"keep").unwrap();
    let run = s.expect(3, &["read", "v.img", "plain", "-o", "inside"]);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(s.path("inside/plain")).unwrap(), b"keep");

    // A symlink at the output path is not followed.
    std::fs::write(s.path("victim"), b"untouched").unwrap();
    std::os::unix::fs::symlink(s.path("victim"), s.path("link")).unwrap();
    let run = s.expect(3, &["read", "v.img", "plain", "-o", "link"]);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    std::os::unix::fs::symlink(s.path("victim"), s.path("inside/plain2")).unwrap();
    s.expect(0, &["write", "v.img", "data", "--name", "plain2"]);
    s.expect(3, &["read", "v.img", "plain2", "-o", "inside"]);
    assert_eq!(std::fs::read(s.path("victim")).unwrap(), b"untouched");
    // -o - with --json would mix data and the document on stdout.
    s.expect(2, &["--json", "read", "v.img", "plain", "-o", "-"]);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(s.path("inside"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = bytes(1, 1);
}
