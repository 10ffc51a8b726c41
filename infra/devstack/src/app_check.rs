//! The local stack's own App Check project: an RSA key whose public half is served as a JWKS
//! on loopback, and tokens signed with it exactly as Firebase signs App Check tokens (RS256,
//! `kid`, the project's issuer and audiences, an app id as `sub`). `stackctl app-check-token`
//! prints one; the tests sign theirs with a key of their own.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The local project's number (no Firebase project has it: the stack is its own project).
pub const LOCAL_PROJECT_NUMBER: &str = "424242424242";
/// The app the local tokens are for unless another is named.
pub const LOCAL_APP_ID: &str = "1:424242424242:android:10ca1de7a5ca1e00";
/// Where the stack keeps its key (`key.json`) and serves its JWKS (`public/jwks.json`).
pub const DEFAULT_DIR: &str = "infra/.local/app-check";

/// A signing key of an App Check project.
pub struct Project {
    pub number: String,
    pub kid: String,
    key: rsa::RsaPrivateKey,
}

impl Project {
    /// A new 2048-bit key for project `number`.
    pub fn generate(number: &str) -> anyhow::Result<Self> {
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).context("generating an RSA key")?;
        Ok(Project {
            number: number.to_owned(),
            kid: format!("local-{}", uuid::Uuid::new_v4().simple()),
            key,
        })
    }

    /// The project in `dir`, created there first if it is not (the JWKS beside it).
    pub fn load_or_create(dir: &Path, number: &str) -> anyhow::Result<Self> {
        let file = dir.join("key.json");
        if file.exists() {
            let project = Self::load(dir)?;
            if project.number == number {
                return Ok(project);
            }
        }
        let project = Self::generate(number)?;
        std::fs::create_dir_all(dir.join("public"))?;
        let der = project.key.to_pkcs1_der().context("encoding the key")?;
        let saved = json!({
            "project_number": project.number,
            "kid": project.kid,
            "private_key_pkcs1_der": STANDARD.encode(der.as_bytes()),
        });
        std::fs::write(&file, saved.to_string())?;
        restrict(&file)?;
        std::fs::write(dir.join("public/jwks.json"), project.jwks().to_string())?;
        Ok(project)
    }

    /// The project saved in `dir` (`stackctl app-check-token` reads it).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let file = dir.join("key.json");
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "reading {} (start the local stack first: infra/dev.sh)",
                file.display()
            )
        })?;
        let saved: Value = serde_json::from_str(&text).context("key.json is not JSON")?;
        let field = |name: &str| {
            saved[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("key.json has no {name}"))
        };
        let der = STANDARD
            .decode(field("private_key_pkcs1_der")?)
            .context("key.json's key is not base64")?;
        Ok(Project {
            number: field("project_number")?,
            kid: field("kid")?,
            key: rsa::RsaPrivateKey::from_pkcs1_der(&der).context("key.json's key")?,
        })
    }

    /// The public key as a JWKS, as Google serves App Check's.
    pub fn jwks(&self) -> Value {
        let public = self.key.to_public_key();
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]})
    }

    /// A token for `app_id` issued at `now`, valid for `lifetime_secs`, with `claims` replaced
    /// or added (tests make wrong ones).
    pub fn token_with(
        &self,
        app_id: &str,
        now: OffsetDateTime,
        lifetime_secs: i64,
        claims: Value,
    ) -> anyhow::Result<String> {
        let mut body = json!({
            "iss": format!("{}{}", shared::guard::attestation::ISSUER_PREFIX, self.number),
            "aud": [format!("projects/{}", self.number), "projects/local-project"],
            "sub": app_id,
            "iat": now.unix_timestamp(),
            "exp": now.unix_timestamp() + lifetime_secs,
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), claims) {
            body.extend(extra);
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        let der = self.key.to_pkcs1_der().context("encoding the key")?;
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        Ok(jsonwebtoken::encode(&header, &body, &key)?)
    }

    /// A token for `app_id`, valid one hour from `now`.
    pub fn token(&self, app_id: &str, now: OffsetDateTime) -> anyhow::Result<String> {
        self.token_with(app_id, now, 3600, json!({}))
    }
}

/// The private key is readable by its owner only.
fn restrict(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
