//! Two processes on one volume: a writer holds it alone (others are refused with status
//! 3 naming it, or wait with `--wait`), readers share it, and no output of a command
//! may be its own volume.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use super::harness::{bytes, Run, Scratch};

/// Whether `/proc/locks` shows a granted `flock` of process `pid` on the file at `path`.
pub(crate) fn holds_lock(pid: u32, path: &Path) -> bool {
    let meta = std::fs::metadata(path).expect("the volume exists");
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        matches!(f.as_slice(), [_, "FLOCK", _, _, p, file, ..] if *p == pid.to_string() && *file == want)
    })
}

/// Waits (bounded) until `child` holds a lock on `path`; fails the test otherwise.
pub(crate) fn wait_until_locked(child: &mut Child, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !holds_lock(child.id(), path) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the holder exited ({status}) without ever locking the volume");
        }
        assert!(
            Instant::now() < deadline,
            "process {} never locked {}",
            child.id(),
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `write VOL - --name NAME` whose stdin stays open: it holds the volume
/// exclusively until [`Writer::finish`].
pub(crate) struct Writer {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Writer {
    pub(crate) fn start(s: &Scratch, volume: &str, name: &str) -> Writer {
        let mut child = s
            .command(&["write", volume, "-", "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the holder");
        let mut stdin = child.stdin.take();
        if let Some(input) = stdin.as_mut() {
            input.write_all(&bytes(100_000, 7)).expect("feeding stdin");
        }
        let mut writer = Writer { child, stdin };
        wait_until_locked(&mut writer.child, &s.path(volume));
        writer
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes stdin; the write commits and exits 0.
    pub(crate) fn finish(mut self) {
        drop(self.stdin.take());
        let out = std::mem::replace(
            &mut self.child,
            std::process::Command::new("true").spawn().unwrap(),
        )
        .wait_with_output()
        .expect("waiting for the holder");
        let run = Run::from_output(out, &["holder".to_string()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn refused_naming(run: &Run, pid: u32) {
    assert_eq!(
        run.code, 3,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("in use by process {pid} (stackctl write")),
        "{}",
        run.stderr
    );
}

/// Two writers at once both exited 0 and one object of each pair was lost; `rm`,
/// `--resume`, `format` and `burn-in` raced the same way, and readers saw a table
/// whose blocks were being reused.
#[test]
fn a_volume_in_use_by_a_writer_is_refused_to_everyone_naming_the_writer() {
    let s = Scratch::new();
    let v = s.volume("v.img", "32MiB");
    s.expect(
        0,
        &["write", &v, "--pattern", "--size", "1M", "--name", "old"],
    );
    let before = std::fs::read(s.path(&v)).unwrap();
    let holder = Writer::start(&s, &v, "held");
    let pid = holder.pid();
    let attempts: &[&[&str]] = &[
        &["write", &v, "--pattern", "--size", "1M", "--name", "b"],
        &["write", &v, "--resume", "--name", "old"],
        &["rm", &v, "old"],
        &["format", &v],
        &["format", &v, "--force"],
        &["burn-in", &v, "--force"],
        &["verify", &v],
        &["ls", &v],
        &["info", &v],
        &["read", &v, "old", "-o", "out"],
    ];
    for args in attempts {
        refused_naming(&s.run(args), pid);
    }
    let doc = s.json(3, &["info", &v]);
    assert!(doc["error"].as_str().unwrap().contains(&pid.to_string()));
    // Nothing was written by the refused commands: the volume changed only by the
    // holder (which has committed nothing yet besides what it had).
    assert_eq!(std::fs::read(s.path(&v)).unwrap().len(), before.len());
    assert!(!s.path("out").exists());
    holder.finish();
    let names: Vec<String> = s.json(0, &["ls", &v])["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["old", "held"]);
    assert_eq!(s.json(0, &["verify", &v])["clean"], true);
}

/// Reads the child's stderr until a line contains `what` (or it ends).
fn stderr_until(child: &mut Child, what: &str) -> String {
    let mut err = child.stderr.take().expect("piped stderr");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains(what) {
        match err.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    child.stderr = Some(err);
    String::from_utf8_lossy(&seen).into_owned()
}

/// A second writer had no way to wait for the first.
#[test]
fn wait_waits_for_the_writer_then_succeeds_and_a_bounded_wait_gives_up() {
    let s = Scratch::new();
    let v = s.volume("v.img", "32MiB");
    let holder = Writer::start(&s, &v, "first");
    let pid = holder.pid();

    let run = s.run(&["--wait=200ms", "write", &v, "--pattern", "--size", "1M"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("after waiting"), "{}", run.stderr);
    assert!(run.stderr.contains(&pid.to_string()), "{}", run.stderr);

    let mut waiter = s
        .command(&[
            "--wait",
            "write",
            &v,
            "--pattern",
            "--size",
            "2M",
            "--name",
            "second",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = stderr_until(&mut waiter, "waiting until it is free");
    assert!(
        said.contains(&format!("in use by process {pid}")),
        "the waiter did not say it waits: {said}"
    );
    // It is still waiting: the holder has not let go.
    assert!(waiter.try_wait().unwrap().is_none());
    holder.finish();
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let objects = s.json(0, &["ls", &v])["objects"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(s.json(0, &["verify", &v])["clean"], true);
}

/// A reader kept busy: `read VOL OBJ -o -` into a pipe nobody drains.
fn blocked_reader(s: &Scratch, v: &str, name: &str) -> Child {
    let mut child = s
        .command(&["read", v, name, "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_locked(&mut child, &s.path(v));
    child
}

/// Readers took no lock: a reader could see blocks of its generation reused.
#[test]
fn readers_share_a_volume_and_keep_writers_out() {
    let s = Scratch::new();
    let v = s.volume("v.img", "32MiB");
    let data = bytes(4 << 20, 3);
    std::fs::write(s.path("big"), &data).unwrap();
    s.expect(0, &["write", &v, "big"]);
    let mut reader = blocked_reader(&s, &v, "big");
    let pid = reader.id();
    // Other readers run alongside.
    s.expect(0, &["ls", &v]);
    s.expect(0, &["info", &v]);
    s.expect(0, &["verify", &v]);
    s.expect(0, &["read", &v, "big", "-o", "copy"]);
    assert_eq!(std::fs::read(s.path("copy")).unwrap(), data);
    // Changes wait for every reader.
    for args in [
        &["write", &v, "--pattern", "--size", "1M"][..],
        &["rm", &v, "big"],
        &["format", &v],
    ] {
        let run = s.run(args);
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("in use by process {pid} (stackctl read")),
            "{}",
            run.stderr
        );
    }
    let mut out = Vec::new();
    reader.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(reader.wait().unwrap().success());
    assert_eq!(out, data);
    s.expect(0, &["rm", &v, "big"]);
}

/// `read VOL OBJ -o VOL` exited 0 and replaced the volume with the object's bytes.
#[test]
fn read_refuses_every_output_that_is_the_volume() {
    let s = Scratch::new();
    let v = s.volume("v.img", "16MiB");
    std::fs::write(s.path("v.img.src"), b"object bytes").unwrap();
    s.expect(0, &["write", &v, "v.img.src", "--name", "v.img"]);
    s.expect(0, &["write", &v, "v.img.src", "--name", "obj"]);
    std::fs::hard_link(s.path(&v), s.path("hard")).unwrap();
    std::os::unix::fs::symlink(s.path(&v), s.path("soft")).unwrap();
    std::fs::create_dir(s.path("sub")).unwrap();
    std::fs::hard_link(s.path(&v), s.path("sub/obj")).unwrap();
    let image = std::fs::read(s.path(&v)).unwrap();
    let cases: &[&[&str]] = &[
        &["read", &v, "obj", "-o", &v],
        &["read", &v, "obj", "-o", "./v.img"],
        &["read", &v, "obj", "-o", "hard"],
        &["read", &v, "obj", "-o", "soft"],
        // Derived names: the object named like the volume, into the volume's directory.
        &["read", &v, "v.img"],
        &["read", &v, "v.img", "-o", "."],
        &["read", &v, "obj", "-o", "sub"],
    ];
    for args in cases {
        let run = s.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("is the volume") && run.stderr.contains("v.img"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(std::fs::read(s.path(&v)).unwrap(), image, "{args:?}");
    }
    // `-o -` with stdout appending to the volume (`>> v.img`).
    let vol_out = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path(&v))
        .unwrap();
    let out = s
        .command(&["read", &v, "obj", "-o", "-"])
        .stdout(vol_out)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let run = Run::from_output(out, &["read -o - >> v.img".to_string()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("stdout"), "{}", run.stderr);
    assert_eq!(std::fs::read(s.path(&v)).unwrap(), image);
    assert_eq!(s.json(0, &["verify", &v])["clean"], true);
}

/// `write VOL VOL` stored the volume into itself while writing it.
#[test]
fn write_refuses_the_volume_as_its_input() {
    let s = Scratch::new();
    let v = s.volume("v.img", "16MiB");
    std::fs::hard_link(s.path(&v), s.path("hard")).unwrap();
    let image = std::fs::read(s.path(&v)).unwrap();
    for args in [
        &["write", &v, &v][..],
        &["write", &v, "hard", "--name", "x"],
    ] {
        let run = s.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("is the volume"), "{}", run.stderr);
        assert_eq!(std::fs::read(s.path(&v)).unwrap(), image);
    }
    let vol_in = std::fs::File::open(s.path(&v)).unwrap();
    let out = s
        .command(&["write", &v, "-", "--name", "x"])
        .stdin(vol_in)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let run = Run::from_output(out, &["write - < v.img".to_string()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(std::fs::read(s.path(&v)).unwrap(), image);
}

/// A valid 255-byte object name could not be read to its default file name ("File
/// name too long": the temporary name adds a prefix and a suffix).
#[test]
fn a_255_byte_name_is_read_to_its_default_name() {
    let s = Scratch::new();
    let v = s.volume("v.img", "16MiB");
    let name = format!("{}é", "n".repeat(253));
    assert_eq!(name.len(), 255);
    let data = bytes(10_000, 5);
    let run = s.run_with_stdin(&["write", &v, "-", "--name", &name], &data);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = s.expect(0, &["read", &v, &name]);
    // 255 bytes fit this filesystem's NAME_MAX, so the name is kept as is.
    assert_eq!(
        std::fs::read(s.path(&name)).unwrap(),
        data,
        "{}",
        run.stdout
    );
    // Into a directory the same.
    std::fs::create_dir(s.path("d")).unwrap();
    let doc = s.json(0, &["read", &v, &name, "-o", "d"]);
    let used = doc["output"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read(s.path(&used)).unwrap(), data);
    // A second read to the same default name refuses, never replaces.
    let run = s.expect(3, &["read", &v, &name, "-o", "d"]);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
}

/// A writer on a block device held only a `flock` on one device node: another node of
/// the same disk (or a program that does not use `flock`) could write alongside it.
#[test]
fn a_writer_claims_a_block_device_exclusively() {
    use std::os::unix::fs::OpenOptionsExt;
    let s = Scratch::new();
    let disk = super::devices::image(&s, "disk.img", 16 << 20, &[]);
    let lo = match super::devices::Loop::attach(&disk) {
        Ok(lo) => lo,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dev = lo.path().to_string();
    s.expect(0, &["format", &dev]);
    let exclusive = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(&dev)
    };
    let holder = Writer::start(&s, &dev, "held");
    let pid = holder.pid();
    // The kernel's claim is held: mkfs, mount or any O_EXCL opener is refused.
    let err = exclusive().expect_err("O_EXCL open of a device a writer holds");
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    refused_naming(&s.run(&["write", &dev, "--pattern", "--size", "1M"]), pid);
    refused_naming(&s.run(&["ls", &dev]), pid);

    // A second device node of the same disk has its own inode (its own flock); the
    // claim keeps a writer out through it too.
    let rdev = std::fs::metadata(&dev).unwrap().rdev();
    let (major, minor) = (
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & 0xffff_f000),
        (rdev & 0xff) | ((rdev >> 12) & 0xffff_ff00),
    );
    let alias = s.path("alias");
    let made = std::process::Command::new("mknod")
        .arg(&alias)
        .args(["b", &major.to_string(), &minor.to_string()])
        .status();
    if made.is_ok_and(|st| st.success()) {
        let alias = alias.to_str().unwrap();
        let run = s.run(&["write", alias, "--pattern", "--size", "1M"]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(
            run.stderr.contains("refused an exclusive open"),
            "{}",
            run.stderr
        );
    } else {
        eprintln!("second device node skipped: mknod is not permitted here");
    }
    holder.finish();
    drop(exclusive().expect("the claim ends with the writer"));
    let names: Vec<String> = s.json(0, &["ls", &dev])["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["held"]);
    assert_eq!(s.json(0, &["verify", &dev])["clean"], true);
    // burn-in keeps one exclusive hold across format, fill and verify.
    let doc = s.json(0, &["burn-in", &dev, "--seed", "3", "--force"]);
    assert_eq!(doc["clean"], true);
}
