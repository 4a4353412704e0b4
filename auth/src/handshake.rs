//! The connecting side of the handshake (slave, backup master, client) as a state machine:
//! HELLO out; with a secret, AUTH in answer to the master's CHALLENGE; then a WELCOME that is
//! trusted only if it carries the master's proof. No I/O: frames in, [`Step`]s out.
//!
//! ```text
//! peer                                         master
//!  HELLO {role, epoch, id, nonce: Np}    -->
//!                                        <--   CHALLENGE {nonce: Nm}
//!  AUTH {proof: HMAC(peer label, T)}     -->   checks the proof
//!                                        <--   WELCOME {terms, proof: HMAC(master label, T, terms)}
//!  checks the proof
//! ```
//!
//! `T` is the transcript of [`crate::secret::Transcript`]. Without a secret the peer sends HELLO
//! with no nonce and the master answers WELCOME at once (or ERROR UNAUTHORIZED if it requires one).

use std::io;
use std::time::{Duration, Instant};

use dsm_wire::{AuthBytes, Body, ErrorCode, Frame, Role};

use crate::secret::{fresh_nonce, Secret, Terms, Transcript};

pub struct Handshake {
    req_id: u64,
    role: Role,
    epoch: u64,
    id: String,
    boot: u64,
    secret: Option<Secret>,
    /// Our nonce (sent in HELLO) when we have a secret.
    nonce: Option<AuthBytes>,
    /// The master's nonce, once its CHALLENGE came.
    master_nonce: Option<AuthBytes>,
}

/// What the caller must do with the frame it just passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this frame (AUTH) and wait for the next one.
    Send(Frame),
    /// Registered: the master accepted us and, when we hold a secret, proved it holds it too.
    Welcomed(Terms),
    /// The master answered with ERROR (for example UNAUTHORIZED, or NOT_PRIMARY).
    Refused { code: ErrorCode, text: String },
    /// The master did not prove it knows the secret, or broke the handshake: send `reply`
    /// (an ERROR saying why, for the master's log), then close. `why` is for our own log.
    Distrust { why: String, reply: Frame },
}

impl Handshake {
    /// Begin a handshake: the HELLO to send first (request id `req_id`), with a fresh nonce
    /// when `secret` is given. Fails only if no nonce can be read from the kernel.
    pub fn start(
        secret: Option<&Secret>,
        req_id: u64,
        role: Role,
        epoch: u64,
        id: String,
        boot: u64,
    ) -> io::Result<(Handshake, Frame)> {
        let nonce = match secret {
            Some(_) => Some(fresh_nonce()?),
            None => None,
        };
        let hello = Frame::new(
            req_id,
            Body::Hello {
                role,
                epoch,
                id: id.clone(),
                boot,
                nonce: nonce.map(Box::new),
                limits: None,
            },
        );
        let hs = Handshake {
            req_id,
            role,
            epoch,
            id,
            boot,
            secret: secret.cloned(),
            nonce,
            master_nonce: None,
        };
        Ok((hs, hello))
    }

    /// Take the master's next frame.
    pub fn on_frame(&mut self, frame: Frame) -> Step {
        match frame.body {
            Body::Challenge { nonce } => self.on_challenge(nonce),
            Body::Welcome {
                epoch,
                inventory,
                standby,
                lease_ms,
                proof,
            } => {
                let terms = Terms {
                    epoch,
                    inventory,
                    standby,
                    lease_ms,
                };
                self.on_welcome(terms, proof)
            }
            Body::Error { code, text } => Step::Refused { code, text },
            other => self.distrust(
                ErrorCode::BadRequest,
                format!(
                    "the master sent {:?} before WELCOME; closing",
                    other.opcode()
                ),
            ),
        }
    }

    fn on_challenge(&mut self, master_nonce: AuthBytes) -> Step {
        let (Some(secret), Some(nonce), None) = (&self.secret, &self.nonce, self.master_nonce)
        else {
            let why = match self.secret {
                None => "the master sent a CHALLENGE, but this side has no secret (--secret-file)",
                Some(_) => "the master sent a second CHALLENGE",
            };
            return self.distrust(ErrorCode::Unauthorized, why.to_string());
        };
        let t = Transcript {
            role: self.role,
            epoch: self.epoch,
            id: &self.id,
            boot: self.boot,
            peer_nonce: nonce,
            master_nonce: &master_nonce,
        };
        let proof = secret.peer_proof(&t);
        self.master_nonce = Some(master_nonce);
        Step::Send(Frame::new(self.req_id, Body::Auth { proof }))
    }

    fn on_welcome(&mut self, terms: Terms, proof: Option<AuthBytes>) -> Step {
        let (Some(secret), Some(nonce)) = (&self.secret, &self.nonce) else {
            // No secret here: nothing to check (and nothing was promised).
            return Step::Welcomed(terms);
        };
        let Some(master_nonce) = &self.master_nonce else {
            return self.distrust(
                ErrorCode::Unauthorized,
                "the master sent WELCOME without asking us to authenticate: it does not know \
                 the secret (a master without --secret-file, or not our master)"
                    .into(),
            );
        };
        let t = Transcript {
            role: self.role,
            epoch: self.epoch,
            id: &self.id,
            boot: self.boot,
            peer_nonce: nonce,
            master_nonce,
        };
        match proof {
            Some(p) if secret.check_master_proof(&t, &terms, &p) => Step::Welcomed(terms),
            Some(_) => self.distrust(
                ErrorCode::Unauthorized,
                "the master's WELCOME carries a wrong proof: it does not know our secret".into(),
            ),
            None => self.distrust(
                ErrorCode::Unauthorized,
                "the master's WELCOME carries no proof that it knows the secret".into(),
            ),
        }
    }

    fn distrust(&self, code: ErrorCode, why: String) -> Step {
        let reply = Frame::new(self.req_id, Body::error(code, why.clone()));
        Step::Distrust { why, reply }
    }
}

/// A refusal that repeats word for word is reported again at most this often.
const REPEAT_EVERY: Duration = Duration::from_secs(10);

/// Why a handshake keeps failing, for a node that retries: each new reason at once, the same
/// reason again only every 10 s with a count, instead of a line per retry.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: String,
    logged_at: Option<Instant>,
    unlogged: u32,
}

impl RefusalLog {
    /// Note one more failure; `Some(line)` when it should be logged now.
    pub fn note(&mut self, why: &str, now: Instant) -> Option<String> {
        let due = self
            .logged_at
            .is_none_or(|t| now.saturating_duration_since(t) >= REPEAT_EVERY);
        if why == self.last && !due {
            self.unlogged += 1;
            return None;
        }
        let line = match self.unlogged {
            n if n > 0 && why == self.last => {
                format!("{why} (and {n} more times since the last such line)")
            }
            _ => why.to_string(),
        };
        self.last = why.to_string();
        self.logged_at = Some(now);
        self.unlogged = 0;
        Some(line)
    }

    /// Whether the last attempt failed (nothing has succeeded since).
    pub fn failing(&self) -> bool {
        self.logged_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_refusals_are_logged_once_then_every_ten_seconds_with_a_count() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        assert!(!log.failing());
        assert_eq!(
            log.note("wrong secret", t0).as_deref(),
            Some("wrong secret")
        );
        assert!(log.failing());
        for s in 1..10 {
            assert_eq!(log.note("wrong secret", t0 + Duration::from_secs(s)), None);
        }
        // A new reason is news at once.
        assert_eq!(
            log.note("no secret", t0 + Duration::from_secs(9))
                .as_deref(),
            Some("no secret")
        );
        assert_eq!(log.note("no secret", t0 + Duration::from_secs(12)), None);
        assert_eq!(
            log.note("no secret", t0 + Duration::from_secs(19))
                .as_deref(),
            Some("no secret (and 1 more times since the last such line)")
        );
    }

    fn secret() -> Secret {
        Secret::from_bytes(b"a shared secret of some length").unwrap()
    }

    /// A master's side of the exchange, by hand: the CHALLENGE nonce and the proof it would send.
    fn master_answers(
        hs_hello: &Frame,
        key: &Secret,
        epoch: u64,
        inventory: bool,
    ) -> (Frame, Frame) {
        let Body::Hello {
            role,
            epoch: peer_epoch,
            id,
            boot,
            nonce: Some(peer_nonce),
            ..
        } = &hs_hello.body
        else {
            panic!("HELLO without a nonce: {hs_hello:?}");
        };
        let master_nonce = [7; 32];
        let t = Transcript {
            role: *role,
            epoch: *peer_epoch,
            id,
            boot: *boot,
            peer_nonce,
            master_nonce: &master_nonce,
        };
        let challenge = Frame::new(
            hs_hello.req_id,
            Body::Challenge {
                nonce: master_nonce,
            },
        );
        let terms = Terms {
            epoch,
            inventory,
            ..Terms::default()
        };
        let welcome = Frame::new(
            hs_hello.req_id,
            terms.welcome(Some(key.master_proof(&t, &terms))),
        );
        (challenge, welcome)
    }

    #[test]
    fn without_a_secret_hello_has_no_nonce_and_any_welcome_is_taken() {
        let (mut hs, hello) = Handshake::start(None, 5, Role::Client, 0, String::new(), 0).unwrap();
        assert!(matches!(hello.body, Body::Hello { nonce: None, .. }));
        assert_eq!(hello.req_id, 5);
        let terms = Terms {
            epoch: 2,
            standby: true,
            lease_ms: 400,
            ..Terms::default()
        };
        assert_eq!(
            hs.on_frame(Frame::new(5, terms.welcome(None))),
            Step::Welcomed(terms)
        );
    }

    #[test]
    fn with_the_secret_on_both_sides_the_peer_is_welcomed() {
        let key = secret();
        let (mut hs, hello) =
            Handshake::start(Some(&key), 1, Role::Slave, 3, "s1".into(), 0).unwrap();
        let (challenge, welcome) = master_answers(&hello, &key, 4, true);
        let Step::Send(auth) = hs.on_frame(challenge) else {
            panic!("no AUTH");
        };
        assert!(matches!(auth.body, Body::Auth { .. }));
        assert_eq!(
            hs.on_frame(welcome),
            Step::Welcomed(Terms {
                epoch: 4,
                inventory: true,
                ..Terms::default()
            })
        );
    }

    /// A stranger posing as the master cannot make a slave with a secret wipe its store: a
    /// WELCOME without a CHALLENGE, without a proof, with a proof under another secret, or with
    /// the inventory flag changed after the proof was made, is never taken.
    #[test]
    fn a_master_that_cannot_prove_the_secret_is_distrusted() {
        let key = secret();
        let stranger = Secret::from_bytes(b"not the shared secret at all").unwrap();
        let start = || Handshake::start(Some(&key), 1, Role::Slave, 0, "s1".into(), 0).unwrap();
        let distrusted = |step: Step| match step {
            Step::Distrust { why, reply } => {
                assert!(matches!(
                    reply.body,
                    Body::Error {
                        code: ErrorCode::Unauthorized,
                        ..
                    }
                ));
                why
            }
            other => panic!("expected Distrust, got {other:?}"),
        };

        let (mut hs, _) = start();
        let bare = Body::Welcome {
            epoch: 9,
            inventory: true,
            standby: false,
            lease_ms: 0,
            proof: None,
        };
        let why = distrusted(hs.on_frame(Frame::new(1, bare)));
        assert!(why.contains("without asking us to authenticate"), "{why}");

        for (master_key, flip_inventory, strip) in [
            (&stranger, false, false),
            (&key, true, false),
            (&key, false, true),
        ] {
            let (mut hs, hello) = start();
            let (challenge, mut welcome) = master_answers(&hello, master_key, 9, true);
            assert!(matches!(hs.on_frame(challenge), Step::Send(_)));
            if let Body::Welcome {
                inventory, proof, ..
            } = &mut welcome.body
            {
                *inventory ^= flip_inventory;
                if strip {
                    *proof = None;
                }
            }
            distrusted(hs.on_frame(welcome));
        }
    }

    #[test]
    fn errors_and_stray_frames_end_the_handshake() {
        let key = secret();
        let (mut hs, _) = Handshake::start(Some(&key), 1, Role::Slave, 0, "s1".into(), 0).unwrap();
        assert_eq!(
            hs.on_frame(Frame::new(1, Body::error(ErrorCode::Unauthorized, "no"))),
            Step::Refused {
                code: ErrorCode::Unauthorized,
                text: "no".into()
            }
        );
        assert!(matches!(
            hs.on_frame(Frame::new(0, Body::Ping)),
            Step::Distrust { .. }
        ));
        // A peer without a secret does not answer a CHALLENGE.
        let (mut plain, _) = Handshake::start(None, 1, Role::Slave, 0, "s1".into(), 0).unwrap();
        let challenge = Body::Challenge { nonce: [1; 32] };
        assert!(matches!(
            plain.on_frame(Frame::new(1, challenge)),
            Step::Distrust { .. }
        ));
    }
}
