//! Passwords: argon2id (RustCrypto `argon2`, default parameters: 19 MiB, 2 passes) on tokio's
//! blocking pool, at most a few at a time — each hash holds 19 MiB and a core for tens of
//! milliseconds, so an unbounded burst of logins must queue rather than exhaust memory.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// The hashing pool.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

/// Hashing could not run (the blocking task failed); the caller answers its internal error.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

impl Default for Passwords {
    fn default() -> Passwords {
        Passwords::new(std::thread::available_parallelism().map_or(2, usize::from))
    }
}

impl Passwords {
    /// At most `concurrency` hashes at once (at least 1).
    pub fn new(concurrency: usize) -> Passwords {
        Passwords { permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
        let _permit = self.permits.acquire().await.map_err(|e| PasswordError(e.to_string()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| PasswordError(e.to_string()))
    }

    /// Hash `password` with argon2id and a random salt (PHC string).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move || hash(&password)).await
    }

    /// Whether `password` matches the stored PHC string (false for an unreadable one).
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool, PasswordError> {
        let (password, stored) = (password.to_owned(), stored.to_owned());
        self.run(move || verify(&password, &stored)).await
    }
}

/// A hash of no one's password, checked when a login names no account: the refusal then takes
/// as long as a wrong password's, so response times do not tell which names exist.
pub static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash("no account has this password"));

/// Hash synchronously (seeding, tests).
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::random::bytes::<16>()).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let passwords = Passwords::new(1);
        let stored = passwords.hash("123456789").await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(passwords.verify("123456789", &stored).await.unwrap());
        assert!(!passwords.verify("12345678", &stored).await.unwrap());
        assert!(!passwords.verify("123456789", "not a hash").await.unwrap());
    }
}
