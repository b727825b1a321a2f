//! The `custody` CLI holds secrets in memory (a passphrase sent to custodyd here) and must never
//! leave them in a core file: it marks itself not dumpable at start. Both processes below get
//! an unlimited core size (`prlimit`, util-linux) and a SIGABRT in an empty directory (Rust programs catch a first SIGSEGV for their stack guard); the
//! control (`sleep`) must leave a core file, so the test can fail, and `custody` must not.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn core_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("core"))
        .collect()
}

fn abort_and_wait(mut child: Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::ABORT).expect("SIGABRT");
    let _ = child.wait();
}

fn wait_for_core(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = core_files(dir);
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn custody_leaves_no_core_file_with_a_secret_in_memory() {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    assert!(
        !pattern.starts_with('|') && !pattern.contains('/'),
        "this test needs cores written to the working directory (core_pattern is {pattern:?})"
    );

    // Control: an ordinary process does leave a core here.
    let control = tempfile::tempdir().expect("tmp");
    let sleeper = Command::new("prlimit")
        .args(["--core=unlimited", "--", "sleep", "30"])
        .current_dir(control.path())
        .spawn()
        .expect("prlimit sleep");
    std::thread::sleep(Duration::from_millis(200));
    abort_and_wait(sleeper);
    let control_cores = wait_for_core(control.path());
    assert!(
        !control_cores.is_empty(),
        "the control process left no core file: this host does not write cores, so the test \
         cannot tell anything (core_pattern {pattern:?})"
    );

    // custody, waiting for custodyd's answer after sending an unseal passphrase.
    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let secret = "Core-File-Probe-Passphrase-31";
    std::fs::write(dir.path().join("pass"), format!("{secret}\n")).expect("pass file");
    let cli = Command::new("bash")
        .arg("-c")
        .arg("exec prlimit --core=unlimited -- \"$0\" --socket \"$1\" unseal --officer alice --passphrase-fd 3 3<pass")
        .arg(env!("CARGO_BIN_EXE_custody"))
        .arg(&socket)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("custody");
    let (mut conn, _) = listener.accept().expect("custody connects");
    // Read the request: the passphrase is now in the CLI's memory (and in this buffer).
    let mut got = vec![0u8; 4096];
    let n = conn.read(&mut got).expect("request");
    assert!(n > 0, "custody sent nothing");
    abort_and_wait(cli);
    std::thread::sleep(Duration::from_millis(500));
    let cores = core_files(dir.path());
    assert!(
        cores.is_empty(),
        "custody left a core file with a passphrase in it: {cores:?}"
    );
}
