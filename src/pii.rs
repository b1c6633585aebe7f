//! Personal data: resident ID numbers (GB 11643-1999) validated, encrypted at rest
//! (AES-256-GCM), looked up by a keyed blind index (HMAC-SHA256), and shown masked.
//! See domain.md §4. Nothing here logs a plain value; [`IdNumber`]'s `Debug` is masked.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Datelike, NaiveDate};

/// A valid 18-character resident ID number (GB 11643-1999), `X` uppercased.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

/// Why an ID number is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not 17 digits and a digit or `X`.
    #[error("身份证号须为18位（17位数字加校验位）")]
    Format,
    /// The first two digits are no province.
    #[error("身份证号地址码无效")]
    Province,
    /// The birth date does not exist, is before 1900 or in the future.
    #[error("身份证号出生日期无效")]
    BirthDate,
    /// The check character is wrong.
    #[error("身份证号校验码错误")]
    Checksum,
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";
const PROVINCES: &[u32] =
    &[11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83];

impl IdNumber {
    /// Validate `raw` (surrounding spaces ignored, `x` accepted) against `today`.
    pub fn parse(raw: &str, today: NaiveDate) -> Result<IdNumber, IdNumberError> {
        let value = raw.trim().to_ascii_uppercase();
        let bytes = value.as_bytes();
        if bytes.len() != 18
            || !bytes[..17].iter().all(u8::is_ascii_digit)
            || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
        {
            return Err(IdNumberError::Format);
        }
        let digit = |i: usize| u32::from(bytes[i] - b'0');
        if !PROVINCES.contains(&(digit(0) * 10 + digit(1))) {
            return Err(IdNumberError::Province);
        }
        let year = (6..10).fold(0, |n, i| n * 10 + digit(i)) as i32;
        let month = digit(10) * 10 + digit(11);
        let day = digit(12) * 10 + digit(13);
        match NaiveDate::from_ymd_opt(year, month, day) {
            Some(birth) if birth.year() >= 1900 && birth <= today => {}
            _ => return Err(IdNumberError::BirthDate),
        }
        let sum: u32 = (0..17).map(|i| digit(i) * WEIGHTS[i]).sum();
        if bytes[17] != CHECK[(sum % 11) as usize] {
            return Err(IdNumberError::Checksum);
        }
        Ok(IdNumber(value))
    }

    /// The number itself — for encryption and the blind index only, never for a log or a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 6 and last 4 characters, 8 `*` between: `610102********1231` (000 §3.1).
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

impl std::fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

/// An ID number not (yet) validated — as a vendor read it — masked as [`IdNumber::masked`] for
/// logs and `Debug`: 18 ASCII characters keep their first 6 and last 4, anything else is `***`.
pub fn mask_id_number(raw: &str) -> String {
    if raw.len() == 18 && raw.is_ascii() {
        format!("{}********{}", &raw[..6], &raw[14..])
    } else {
        "***".into()
    }
}

/// A mainland mobile number: 11 digits, `1` then `3`–`9` (domain.md §4.2).
pub fn valid_phone(phone: &str) -> bool {
    phone.len() == 11
        && phone.bytes().all(|b| b.is_ascii_digit())
        && phone.starts_with('1')
        && (b'3'..=b'9').contains(&phone.as_bytes()[1])
}

/// A phone number for logs: `138****5678`.
pub fn mask_phone(phone: &str) -> String {
    if phone.len() == 11 && phone.is_ascii() { format!("{}****{}", &phone[..3], &phone[7..]) } else { "***".into() }
}

/// Why decryption failed: the stored value is corrupt or was written under another key.
#[derive(Debug, thiserror::Error)]
#[error("stored personal data does not decrypt")]
pub struct DecryptError;

/// The keys for personal data: AES-256-GCM for values at rest, an HMAC pepper for blind indexes
/// and one-way hashes of short secrets (SMS codes).
pub struct Vault {
    key: LessSafeKey,
    pepper: hmac::Key,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// From a 32-byte AES key and a pepper (≥ 32 bytes).
    pub fn new(aes_key: &[u8], pepper: &[u8]) -> anyhow::Result<Vault> {
        anyhow::ensure!(aes_key.len() == 32, "the personal-data key must be 32 bytes (64 hex characters)");
        anyhow::ensure!(pepper.len() >= 32, "the pepper must be at least 32 bytes");
        let key = UnboundKey::new(&AES_256_GCM, aes_key).map_err(|_| anyhow::anyhow!("unusable AES key"))?;
        Ok(Vault { key: LessSafeKey::new(key), pepper: hmac::Key::new(hmac::HMAC_SHA256, pepper) })
    }

    /// Encrypt `plain`, bound to `context` (table/column/row) so a ciphertext copied to another
    /// row does not decrypt: base64(nonce ‖ ciphertext ‖ tag).
    pub fn encrypt(&self, plain: &str, context: &str) -> String {
        let nonce: [u8; NONCE_LEN] = crate::random::bytes();
        let mut buffer = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buffer)
            .expect("AES-GCM sealing cannot fail for inputs below 64 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        STANDARD.encode(out)
    }

    /// Decrypt what [`Vault::encrypt`] wrote under the same `context`.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<String, DecryptError> {
        let bytes = STANDARD.decode(stored).map_err(|_| DecryptError)?;
        if bytes.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError)?;
        let mut buffer = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer).map_err(|_| DecryptError)?;
        String::from_utf8(plain.to_vec()).map_err(|_| DecryptError)
    }

    /// A keyed one-way digest (hex) of `value` in `domain`: blind indexes of ID numbers, hashes
    /// of SMS codes. Unkeyed SHA-256 would not do: the spaces are small enough to enumerate.
    pub fn digest(&self, domain: &str, value: &str) -> String {
        let mut context = hmac::Context::with_key(&self.pepper);
        context.update(domain.as_bytes());
        context.update(&[0]);
        context.update(value.as_bytes());
        hex::encode(context.sign().as_ref())
    }

    /// Whether `value` has digest `expected`, compared in constant time.
    pub fn digest_matches(&self, domain: &str, value: &str, expected: &str) -> bool {
        let actual = self.digest(domain, value);
        aws_lc_rs::constant_time::verify_slices_are_equal(actual.as_bytes(), expected.as_bytes()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    #[test]
    fn id_numbers_follow_gb_11643() {
        for good in ["11010519491231002X", "110101202311012176", "120223198902021249", "610102199001011231"] {
            assert!(IdNumber::parse(good, today()).is_ok(), "{good}");
        }
        assert_eq!(IdNumber::parse("11010519491231002x", today()).unwrap().expose(), "11010519491231002X");
        // The heating document's own example fails the checksum (000 §3.2, §4.1).
        assert_eq!(IdNumber::parse("610102199001011234", today()), Err(IdNumberError::Checksum));
        assert_eq!(IdNumber::parse("110101202311012171", today()), Err(IdNumberError::Checksum));
        assert_eq!(IdNumber::parse("130402198207290622", today()), Err(IdNumberError::Checksum));
        // Checksum-valid (domain.md §4.1) but born before 1900.
        assert_eq!(IdNumber::parse("440524188001010014", today()), Err(IdNumberError::BirthDate));
        assert_eq!(IdNumber::parse("6101021990010112", today()), Err(IdNumberError::Format));
        assert_eq!(IdNumber::parse("99010219900101123X", today()), Err(IdNumberError::Province));
        assert_eq!(IdNumber::parse("610102199002301234", today()), Err(IdNumberError::BirthDate));
        assert_eq!(IdNumber::parse("610102203001011234", today()), Err(IdNumberError::BirthDate));
    }

    #[test]
    fn masks_keep_six_and_four() {
        let id = IdNumber::parse("610102199001011231", today()).unwrap();
        assert_eq!(id.masked(), "610102********1231");
        assert_eq!(format!("{id:?}"), "IdNumber(610102********1231)");
        assert_eq!(mask_phone("13888888888"), "138****8888");
    }

    #[test]
    fn encryption_round_trips_and_is_bound_to_its_context() {
        let vault = Vault::new(&[7; 32], &[9; 32]).unwrap();
        let sealed = vault.encrypt("610102199001011231", "heating_user.id_card:u1");
        assert!(!sealed.contains("610102"));
        assert_ne!(sealed, vault.encrypt("610102199001011231", "heating_user.id_card:u1"), "fresh nonce each time");
        assert_eq!(vault.decrypt(&sealed, "heating_user.id_card:u1").unwrap(), "610102199001011231");
        assert!(vault.decrypt(&sealed, "heating_user.id_card:u2").is_err());
        let other = Vault::new(&[8; 32], &[9; 32]).unwrap();
        assert!(other.decrypt(&sealed, "heating_user.id_card:u1").is_err());
    }

    #[test]
    fn digests_are_keyed() {
        let a = Vault::new(&[7; 32], &[1; 32]).unwrap();
        let b = Vault::new(&[7; 32], &[2; 32]).unwrap();
        assert_eq!(a.digest("id", "x"), a.digest("id", "x"));
        assert_ne!(a.digest("id", "x"), b.digest("id", "x"));
        assert_ne!(a.digest("id", "x"), a.digest("sms", "x"));
        assert!(a.digest_matches("id", "x", &a.digest("id", "x")));
        assert!(!a.digest_matches("id", "y", &a.digest("id", "x")));
    }
}
