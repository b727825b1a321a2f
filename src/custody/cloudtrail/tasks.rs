//! Which catalogue task a root API call belongs to, by its CloudTrail `eventSource` and
//! `eventName`. Only calls whose names the provider documents are mapped; a root call that maps
//! to no task is explained by its session alone.
//!
//! Sources of the names:
//! - AWS Account Management API Reference: `PutContactInformation`, `PutAlternateContact`,
//!   `DeleteAlternateContact` (event source `account.amazonaws.com`).
//! - AWS Billing User Guide, "AWS Billing CloudTrail events": `CloseAccount` (event source
//!   `billingconsole.amazonaws.com`); payment methods and preferences are the events of
//!   `payments.amazonaws.com`, tax registrations those of `tax.amazonaws.com`.
//! - AWS Support User Guide, "AWS managed policies for AWS Support Plans":
//!   `StartSupportPlanUpdate`, `CreateSupportPlanSchedule` (`supportplans.amazonaws.com`).
//! - IAM API Reference: `CreateAccessKey`, `UpdateAccessKey`, `DeleteAccessKey` (the root
//!   user's own keys when the root user calls them).
//! - AWS CloudTrail User Guide, "AWS Management Console sign-in events", and the root
//!   password-recovery flow: `PasswordRecoveryRequested`, `PasswordRecoveryCompleted`
//!   (`signin.amazonaws.com`, root user only).
//! - Amazon S3 API Reference: `PutBucketPolicy`, `DeleteBucketPolicy`; Amazon SQS API
//!   Reference: `SetQueueAttributes`, `RemovePermission` (the calls that restore a policy
//!   that locks everyone out).

/// The catalogue task id a root call belongs to, if it is one of the mapped calls. Reads
/// (`readOnly` true) of the billing, payment, tax and support-plan services belong to none.
pub fn task_of(source: &str, name: &str, read_only: Option<bool>) -> Option<&'static str> {
    let write = read_only != Some(true);
    let task = match (source, name) {
        (
            "account.amazonaws.com",
            "PutContactInformation" | "PutAlternateContact" | "DeleteAlternateContact",
        ) => "change-contact",
        ("billingconsole.amazonaws.com", "CloseAccount") => "close-account",
        ("payments.amazonaws.com", _) if write => "change-payment",
        ("tax.amazonaws.com", _) if write => "seller-or-tax-settings",
        ("supportplans.amazonaws.com", "StartSupportPlanUpdate" | "CreateSupportPlanSchedule") => {
            "change-support-plan"
        }
        ("iam.amazonaws.com", "CreateAccessKey") => "create-root-access-keys",
        ("iam.amazonaws.com", "DeleteAccessKey" | "UpdateAccessKey") => "delete-root-access-keys",
        ("signin.amazonaws.com", "PasswordRecoveryRequested" | "PasswordRecoveryCompleted") => {
            "recover-root-password"
        }
        ("s3.amazonaws.com", "PutBucketPolicy" | "DeleteBucketPolicy") => "unlock-s3-bucket-policy",
        ("sqs.amazonaws.com", "SetQueueAttributes" | "RemovePermission") => {
            "unlock-sqs-queue-policy"
        }
        _ => return None,
    };
    Some(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::policy::default_catalogue;

    #[test]
    fn every_mapped_task_is_in_the_default_catalogue() {
        let catalogue: Vec<String> = default_catalogue().into_iter().map(|t| t.id).collect();
        for (source, name) in [
            ("account.amazonaws.com", "PutContactInformation"),
            ("billingconsole.amazonaws.com", "CloseAccount"),
            ("payments.amazonaws.com", "UpdatePaymentPreferences"),
            ("tax.amazonaws.com", "PutTaxRegistration"),
            ("supportplans.amazonaws.com", "StartSupportPlanUpdate"),
            ("iam.amazonaws.com", "CreateAccessKey"),
            ("iam.amazonaws.com", "DeleteAccessKey"),
            ("signin.amazonaws.com", "PasswordRecoveryCompleted"),
            ("s3.amazonaws.com", "DeleteBucketPolicy"),
            ("sqs.amazonaws.com", "SetQueueAttributes"),
        ] {
            let task = task_of(source, name, Some(false)).expect("mapped");
            assert!(catalogue.iter().any(|c| c == task), "{task}");
        }
    }

    #[test]
    fn reads_and_unknown_calls_map_to_no_task() {
        assert_eq!(
            task_of(
                "payments.amazonaws.com",
                "ListPaymentInstruments",
                Some(true)
            ),
            None
        );
        assert_eq!(task_of("iam.amazonaws.com", "ListUsers", Some(true)), None);
        assert_eq!(
            task_of("ec2.amazonaws.com", "RunInstances", Some(false)),
            None
        );
        assert_eq!(
            task_of("iam.amazonaws.com", "CreateAccessKey", None),
            Some("create-root-access-keys")
        );
    }
}
