//! The validation of the detectors' candidates, so that ordinary numbers,
//! dates, times and versions are left alone: context around a match,
//! checksums (Luhn, ISO 13616 mod-97), number plans and lengths.

use std::net::Ipv6Addr;

fn before(text: &str, i: usize) -> (Option<char>, Option<char>) {
    let mut it = text[..i].chars().rev();
    (it.next(), it.next())
}

fn after(text: &str, i: usize) -> (Option<char>, Option<char>) {
    let mut it = text[i..].chars();
    (it.next(), it.next())
}

fn is_digit(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_digit())
}

fn is_alnum(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// Not glued to a longer number: no digit (or `digit<sep>`) right before or after.
fn number_bounded(text: &str, start: usize, end: usize, seps: &[char]) -> bool {
    let (b1, b2) = before(text, start);
    let (a1, a2) = after(text, end);
    let glued_before = is_alnum(b1) || (b1.is_some_and(|c| seps.contains(&c)) && is_digit(b2));
    let glued_after = is_alnum(a1) || (a1.is_some_and(|c| seps.contains(&c)) && is_digit(a2));
    !glued_before && !glued_after
}

pub(super) fn email_ok(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let (local, domain) = value.split_once('@').unwrap_or((value, ""));
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    // `icon@2x.png`: a retina image name, not an address.
    let first_label = domain.split('.').next().unwrap_or("");
    if first_label.len() >= 2
        && first_label.ends_with(['x', 'X'])
        && first_label[..first_label.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return false;
    }
    // `git@github.com:org/repo.git`: an scp-style address.
    let (a1, a2) = after(text, end);
    !(a1 == Some(':') && a2.is_some_and(|c| !c.is_whitespace()))
}

pub(super) fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// The end of an international number starting at `start`: the longest
/// prefix of the candidate, ending after a group, with 8 to 15 digits.
pub(super) fn intl_phone_end(text: &str, start: usize, end: usize) -> Option<usize> {
    // `a+12345678` is arithmetic, not a phone number.
    let (b1, _) = before(text, start);
    if is_alnum(b1) || matches!(b1, Some(')' | ']' | '+')) {
        return None;
    }
    let value = &text[start..end];
    let mut count = 0;
    let mut ends = Vec::new();
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            count += 1;
            if bytes.get(i + 1).is_none_or(|n| !n.is_ascii_digit()) {
                ends.push((start + i + 1, count));
            }
        }
    }
    ends.into_iter()
        .rev()
        .find(|&(e, n)| (8..=15).contains(&n) && number_bounded(text, start, e, &['.', '-']))
        .map(|(e, _)| e)
}

pub(super) fn us_phone_ok(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let d = digits(value);
    if d.len() != 10 || d[0] < 2 || d[3] < 2 {
        return false;
    }
    // One separator kind between the exchange and the line: 202-555-0143, 202.555.0143.
    if !value.starts_with('(') {
        let seps: Vec<char> = value.chars().filter(|c| !c.is_ascii_digit()).collect();
        if seps.first() != seps.last() {
            return false;
        }
    }
    let (b1, _) = before(text, start);
    if b1 == Some('+') {
        return false; // the international form covers it
    }
    number_bounded(text, start, end, &['.', '-'])
}

/// The Luhn checksum.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the major networks (Visa, Mastercard, Amex, Discover,
/// JCB, Diners, UnionPay, Maestro).
fn known_issuer(d: &[u8]) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    match d[0] {
        // Visa; Mastercard 51-55, Maestro 50 and 56-58; Discover, UnionPay, Maestro.
        4..=6 => true,
        2 => (2221..=2720).contains(&n(4)),
        3 => (34..=39).contains(&n(2)) || (300..=305).contains(&n(3)),
        _ => false,
    }
}

pub(super) fn card_ok(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let d = digits(value);
    if !(13..=19).contains(&d.len()) || !known_issuer(&d) || !luhn(&d) {
        return false;
    }
    let seps: Vec<char> = value.chars().filter(|c| !c.is_ascii_digit()).collect();
    if let Some(&sep) = seps.first() {
        if seps.iter().any(|&c| c != sep) {
            return false;
        }
        let groups: Vec<usize> = value.split(sep).map(str::len).collect();
        if groups[0] != 4 || groups[1..].iter().any(|&g| !(3..=6).contains(&g)) {
            return false;
        }
    }
    // A space after a card is just a space (`4111 1111 1111 1111 12/25`).
    number_bounded(text, start, end, &['-', '.'])
}

pub(super) fn ssn_ok(text: &str, start: usize, end: usize) -> bool {
    let d = digits(&text[start..end]);
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    if area == 0 || area == 666 || area >= 900 {
        return false;
    }
    if d[3] == 0 && d[4] == 0 || d[5..].iter().all(|&x| x == 0) {
        return false;
    }
    number_bounded(text, start, end, &['-', '.'])
}

pub(super) fn ipv4_ok(text: &str, start: usize, end: usize) -> bool {
    let valid = text[start..end]
        .split('.')
        .all(|o| (o.len() == 1 || !o.starts_with('0')) && o.parse::<u16>().is_ok_and(|v| v <= 255));
    if !valid || !number_bounded(text, start, end, &['.']) {
        return false;
    }
    // 0.0.0.0, loopback, broadcast and netmasks (255.255.255.0) say nothing
    // about anyone.
    let Ok(ip) = text[start..end].parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let bits = u32::from(ip);
    if ip.is_unspecified() || ip.is_loopback() || bits.leading_ones() + bits.trailing_zeros() == 32
    {
        return false;
    }
    // `Chrome/120.0.0.0` is a product version.
    let (b1, b2) = before(text, start);
    if b1 == Some('/') && is_alnum(b2) {
        return false;
    }
    // `version 1.2.3.4`, `section 1.2.3.4`.
    let head = text[..start].trim_end_matches([' ', ':', '=']);
    let from = head.char_indices().rev().nth(11).map_or(0, |(i, _)| i);
    let lead = head[from..].to_lowercase();
    ![
        "version", "ver", "v", "release", "build", "section", "sec", "§", "chapter",
    ]
    .iter()
    .any(|w| {
        lead.ends_with(w)
            && !lead[..lead.len() - w.len()]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
    })
}

pub(super) fn ipv6_end(text: &str, start: usize, end: usize) -> Option<usize> {
    let (b1, _) = before(text, start);
    if is_alnum(b1) || matches!(b1, Some(':' | '.')) {
        return None;
    }
    // A trailing `:` (end of a sentence, `addr:port`) is not part of it.
    let mut end = end;
    let mut value = &text[start..end];
    if value.parse::<Ipv6Addr>().is_err() && value.ends_with(':') && !value.ends_with("::") {
        end -= 1;
        value = &text[start..end];
    }
    value.parse::<Ipv6Addr>().ok()?;
    let (a1, _) = after(text, end);
    if is_alnum(a1) || a1 == Some(':') {
        return None;
    }
    let groups = value.split(':').filter(|g| !g.is_empty()).count();
    let hex = value.bytes().filter(u8::is_ascii_hexdigit).count();
    let has_digit = value.bytes().any(|b| b.is_ascii_digit());
    (groups >= 2 && hex >= 5 && has_digit).then_some(end)
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        _ => return None,
    })
}

/// The ISO 13616 (ISO 7064 mod 97-10) checksum of a compact IBAN.
pub(crate) fn iban_checksum_ok(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The end of a valid IBAN starting at `start`, cut to its country's length.
pub(super) fn iban_end(text: &str, start: usize, end: usize) -> Option<usize> {
    let (b1, _) = before(text, start);
    if is_alnum(b1) {
        return None;
    }
    let want = iban_length(&text[start..start + 2])?;
    let mut compact = String::with_capacity(want);
    let mut stop = None;
    for (i, c) in text[start..end].char_indices() {
        if c != ' ' {
            compact.push(c);
            if compact.len() == want {
                stop = Some(start + i + 1);
                break;
            }
        }
    }
    let stop = stop?;
    let (a1, _) = after(text, stop);
    if is_alnum(a1) {
        return None;
    }
    // Spaced IBANs come in groups of four.
    let printed = &text[start..stop];
    if printed.contains(' ') {
        let groups: Vec<&str> = printed.split(' ').collect();
        let last = groups.len() - 1;
        if groups
            .iter()
            .enumerate()
            .any(|(i, g)| g.len() != 4 && !(i == last && (1..=4).contains(&g.len())))
        {
            return None;
        }
    }
    iban_checksum_ok(&compact).then_some(stop)
}

pub(super) fn api_key_ok(value: &str) -> bool {
    match value.strip_prefix("sk-") {
        // `sk-` keys carry digits; a long hyphenated word does not.
        Some(rest) => rest.bytes().any(|b| b.is_ascii_digit()),
        None => true,
    }
}
