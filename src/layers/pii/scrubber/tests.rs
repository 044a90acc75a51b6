//! The detectors, one by one, and the scrubber and vault around them.

use super::validate::{digits, iban_checksum_ok, luhn};
use super::*;

fn redact(text: &str) -> String {
    Scrubber::default().scrub_text(text).into_owned()
}

fn kinds(text: &str) -> Vec<(Detector, String)> {
    Scrubber::default()
        .find(text)
        .iter()
        .map(|f| (f.detector, f.text(text).to_string()))
        .collect()
}

#[test]
fn emails() {
    assert_eq!(
        redact("write to jane.doe+news@mail.example.co.uk!"),
        "write to [EMAIL]!"
    );
    assert_eq!(redact("A@B.IO"), "[EMAIL]");
    for no in [
        "git@github.com:org/repo.git",
        "icon@2x.png",
        "user@localhost",
        "@decorator",
        "pkg@1.2.3",
    ] {
        assert_eq!(redact(no), no);
    }
}

#[test]
fn phones() {
    for yes in [
        "+44 20 7946 0958",
        "+1-202-555-0143",
        "(202) 555-0143",
        "202-555-0143",
        "202.555.0143",
        "+33 1 23 45 67 89",
        "+49 (0)30 1234567",
    ] {
        assert_eq!(
            redact(&format!("call {yes} now")),
            "call [PHONE] now",
            "{yes}"
        );
    }
    for no in [
        "123-456-7890", // area code 1xx
        "202-555.0143", // mixed separators
        "x+12345678",   // arithmetic
        "+1",
        "2024-01-15",
        "1-800-555",
        "202-555-01439",
    ] {
        assert_eq!(redact(no), no, "{no}");
    }
}

#[test]
fn cards() {
    for yes in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555555555554444",
        "3782 822463 10005",
        "6011111111111117",
    ] {
        assert_eq!(
            redact(&format!("card {yes}.")),
            "card [CREDIT_CARD].",
            "{yes}"
        );
    }
    for no in [
        "4111 1111 1111 1112", // Luhn fails
        "0000000000000000",
        "1705312800000",    // ms timestamp
        "9111111111111111", // no such issuer
        "4111 11111 111 1111 1",
        "1234-5678-9012-3456-7890",
    ] {
        assert_eq!(redact(no), no, "{no}");
    }
}

#[test]
fn ssns() {
    assert_eq!(redact("SSN 123-45-6789."), "SSN [SSN].");
    for no in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "1123-45-6789",
    ] {
        assert_eq!(redact(no), no, "{no}");
    }
}

#[test]
fn ips() {
    assert_eq!(
        redact("from 192.168.1.20 and 10.0.0.1:8080"),
        "from [IP_ADDRESS] and [IP_ADDRESS]:8080"
    );
    assert_eq!(
        redact("host 2001:db8::8a2e:370:7334 up"),
        "host [IP_ADDRESS] up"
    );
    assert_eq!(redact("fe80::1ff:fe23:4567:890a"), "[IP_ADDRESS]");
    assert_eq!(
        redact("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:443"),
        "[[IP_ADDRESS]]:443"
    );
    for no in [
        "256.1.1.1",
        "1.2.3.4.5",
        "v1.2.3.4",
        "version 10.0.19041.1",
        "Chrome/120.0.0.0",
        "01.02.03.04",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.0",
        "std::io::Result",
        "Vec::new()",
        "12:30:45",
        "::1",
        "00:1a:2b:3c:4d:5e",
        "2024-01-15T10:30:00Z",
    ] {
        assert_eq!(redact(no), no, "{no}");
    }
}

#[test]
fn ibans() {
    assert_eq!(
        redact("IBAN GB82 WEST 1234 5698 7654 32 please"),
        "IBAN [IBAN] please"
    );
    assert_eq!(redact("DE89370400440532013000"), "[IBAN]");
    assert_eq!(redact("FR1420041010050500013M02606."), "[IBAN].");
    for no in [
        "GB82 WEST 1234 5698 7654 33",
        "DE89370400440532013001",
        "XX12345678901234",
    ] {
        assert_eq!(redact(no), no, "{no}");
    }
    assert!(iban_checksum_ok("NL91ABNA0417164300"));
}

#[test]
fn api_keys() {
    for yes in [
        "sk-proj-abcDEF1234567890abcdefXYZ",
        "sk-ant-api03-AbCdEf1234567890_-xyzXYZ0123456789",
        "sk-1234567890abcdef",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ] {
        assert_eq!(redact(&format!("key={yes} ok")), "key=[API_KEY] ok", "{yes}");
    }
    // Keys without a digit, alone (the shortest a key can be) and in
    // text without a digit or '@' (which skips every other detector).
    for yes in ["xoxb-abcdefghij", "AIzaSyAbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfG"] {
        assert_eq!(redact(yes), "[API_KEY]", "{yes}");
        assert_eq!(redact(&format!("token {yes}.")), "token [API_KEY].");
    }
    for no in [
        "sk-learn",
        "sk-this-is-a-long-hyphenated-phrase",
        "AKIA1234",
    ] {
        assert_eq!(redact(no), no, "{no}");
    }
}

#[test]
fn overlaps_prefer_first_then_longest() {
    let k = kinds("4111-1111-1111-1111 and 123-45-6789");
    assert_eq!(
        k,
        vec![
            (Detector::CreditCard, "4111-1111-1111-1111".to_string()),
            (Detector::Ssn, "123-45-6789".to_string())
        ]
    );
}

#[test]
fn mask_keeps_ends() {
    assert_eq!(mask("jane@example.com"), "ja************om");
    assert_eq!(mask("abcd"), "****");
    assert_eq!(mask("héllo"), "hé*lo");
    let s = Scrubber::new(&[Detector::Phone], PiiAction::Mask);
    assert_eq!(s.scrub_text("+44 20 7946 0958"), "+4************58");
}

#[test]
fn only_selected_detectors_run() {
    let s = Scrubber::new(&[Detector::Email], PiiAction::Redact);
    assert_eq!(s.scrub_text("a@b.io 123-45-6789"), "[EMAIL] 123-45-6789");
    assert_eq!(s.detectors().collect::<Vec<_>>(), vec![Detector::Email]);
}

#[test]
fn vault_numbers_by_first_appearance() {
    let s = Scrubber::new(&Detector::ALL, PiiAction::Reversible);
    let mut v = Vault::default();
    let out = s.scrub_with("b@x.io 10.0.0.1 a@x.io b@x.io 2001:db8::1:2", &mut v);
    assert_eq!(
        out,
        "<EMAIL_1> <IP_ADDRESS_1> <EMAIL_2> <EMAIL_1> <IP_ADDRESS_2>"
    );
    assert_eq!(v.len(), 4);
    assert_eq!(
        v.restore("<EMAIL_2>, <IP_ADDRESS_1>, <EMAIL_9>"),
        "a@x.io, 10.0.0.1, <EMAIL_9>"
    );
    // Scrubbing more text with the same vault keeps the numbers.
    assert_eq!(s.scrub_with("a@x.io", &mut v), "<EMAIL_2>");
}

#[test]
fn restore_escapes_for_json() {
    let mut v = Vault::default();
    v.placeholder_for(Detector::Email, "q\"uote@x.io");
    assert_eq!(
        v.restore_with("{\"to\":\"<EMAIL_1>\"}", true),
        "{\"to\":\"q\\\"uote@x.io\"}"
    );
}

#[test]
fn partial_placeholders() {
    let mut v = Vault::default();
    assert_eq!(v.pending_placeholder("see <"), None);
    v.placeholder_for(Detector::Email, "a@b.io");
    v.placeholder_for(Detector::Phone, "+44 20 7946 0958");
    assert_eq!(v.pending_placeholder("see <EMA"), Some(4));
    assert_eq!(v.pending_placeholder("see <"), Some(4));
    assert_eq!(v.pending_placeholder("see <EMAIL_1"), Some(4));
    assert_eq!(v.pending_placeholder("see <PHONE_"), Some(4));
    assert_eq!(v.pending_placeholder("see <EMAIL_1>"), None);
    assert_eq!(v.pending_placeholder("see <EMAIL_2"), None);
    assert_eq!(v.pending_placeholder("see <SSN"), None);
    assert_eq!(v.pending_placeholder("a < b"), None);
    assert_eq!(v.pending_placeholder("<html"), None);
    assert_eq!(v.pending_placeholder("<EMAIL_1> <E"), Some(10));
}

#[test]
fn luhn_and_mod97() {
    assert!(luhn(&digits("79927398713")));
    assert!(!luhn(&digits("79927398710")));
    assert!(iban_checksum_ok("GB82WEST12345698765432"));
    assert!(!iban_checksum_ok("GB82WEST12345698765433"));
}
