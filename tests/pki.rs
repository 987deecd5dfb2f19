//! Test certificates made with openssl: a CA, and leaf certificates it signs for a server
//! (127.0.0.1, localhost) or a client, each a key and a certificate file.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct Ca {
    dir: PathBuf,
    name: String,
    pub cert: PathBuf,
    key: PathBuf,
}

pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package) is installed by cargo xtask test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An EC P-256 key (fast to make) and a request for `cn`.
fn key_and_request(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
}

impl Ca {
    /// A self-signed CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}-ca.key"),
                "-out",
                &format!("{name}-ca.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name} CA"),
            ],
        );
        Ca {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            cert: dir.join(format!("{name}-ca.pem")),
            key: dir.join(format!("{name}-ca.key")),
        }
    }

    fn sign(&self, name: &str, cn: &str, ext: &str) -> Leaf {
        let dir = &self.dir;
        key_and_request(dir, name, cn);
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                self.cert.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-CAserial",
                &format!("{}-ca.srl", self.name),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        Leaf {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, subject CN `cn`.
    pub fn server(&self, name: &str, cn: &str) -> Leaf {
        self.sign(
            name,
            cn,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate whose SAN is the DNS name `san`.
    pub fn client(&self, name: &str, san: &str) -> Leaf {
        self.sign(
            name,
            san,
            &format!(
                "subjectAltName=DNS:{san}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
            ),
        )
    }
}
