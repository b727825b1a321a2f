//! The sign-in wizard at a real terminal: `custody ceremony sign-in` runs on a pseudo-terminal
//! (its controlling terminal, so hidden prompts read it as they would a person's keyboard)
//! against a real `custodyd`. The test answers each prompt only once it appears, like the
//! people in the room. Names are echoed; passphrases and second-factor codes never are; a
//! mistyped passphrase is explained and asked again, and so is an officer who already
//! approved; the wizard that stops names the command that resumes it.

use crate::support;

use support::daemon::{request_status, user_pass, with_task, world};

#[test]
fn sign_in_wizard_at_a_terminal_never_echoes_a_secret() {
    let mut w = world();
    w.room_in_step(5);
    w.add_account("alice");

    let (mut t, mut child) = w.terminal(&with_task(
        &["ceremony", "sign-in"],
        &[
            "--reason",
            "rotate the root password after the annual audit",
        ],
    ));
    let wrong = "dave-Mistyped-Phrase-7";
    t.expect("Requester (the operator who will sign in): name: ");
    t.type_line("dave");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(wrong);
    t.expect("Let's try that step again.");
    t.expect("Requester (the operator who will sign in): name: ");
    t.type_line("dave");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(&user_pass("dave"));
    t.expect("Hand the keyboard to approving officer 1 (not dave).");
    let mut codes = Vec::new();
    // alice at the second approver's prompt too: a repeated officer is asked for again.
    for (n, who) in [(1, "alice"), (2, "alice"), (2, "bob")] {
        if (n, who) == (2, "bob") {
            t.expect("refused (already_approved): ");
            t.expect("Let's try that step again.");
        }
        t.expect(&format!("Approving officer {n}: name: "));
        t.type_line(who);
        t.expect(&format!("Passphrase of {who} (hidden): "));
        t.type_line(&user_pass(who));
        t.expect(&format!(
            "Second-factor code of {who}, from their authenticator (hidden): "
        ));
        let c = w.code(who);
        t.type_line(&c);
        codes.push(c);
    }
    t.expect("the request is approved.");
    // The account has no key in the safe: the wizard stops at the check-out, and says how
    // to resume it.
    t.expect("custody ceremony sign-in --request req-");
    t.expect("has no unblocked key in the safe to check out");
    let status = child.wait().expect("wizard");
    assert_eq!(status.code(), Some(1));

    let screen = t.all();
    for secret in [
        wrong.to_owned(),
        user_pass("dave"),
        user_pass("alice"),
        user_pass("bob"),
    ]
    .iter()
    .chain(&codes)
    {
        assert!(
            !screen.contains(secret.as_str()),
            "a secret was echoed on the terminal:\n{screen}"
        );
    }
    // What is typed visibly is echoed: the names.
    assert!(screen.contains("name: dave"), "{screen}");
    assert!(screen.contains("name: alice"), "{screen}");
    assert!(
        screen.contains("refused (authentication_failed): "),
        "the mistyped passphrase is explained:\n{screen}"
    );
    let id = screen
        .split_whitespace()
        .find(|w| w.starts_with("req-") && w.len() == 20)
        .expect("the request id is shown")
        .to_owned();
    assert_eq!(request_status(&w, &id), "approved");
}
