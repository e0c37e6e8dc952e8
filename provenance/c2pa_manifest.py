"""C2PA Content Credentials for generated mp4 files: sign with a manifest, read and validate it back.

Reference: C2PA Technical Specification 2.x (contentauth c2pa-rs through `c2pa-python`). The library refuses a
self-signed signing certificate, so the local identity made on first use is a tiny CA plus a leaf it issued.
"""
import datetime
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..core.errors import SpacetimeError
from .user_config import PACK_NAME, user_config_dir

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_ASSERTION = "com.comfyui-spacetime.generation"
UNTRUSTED_CODE = "signingCredential.untrusted"
LOCAL_CHAIN_FILE = "c2pa_local_chain.pem"
LOCAL_KEY_FILE = "c2pa_local_key.pem"
_EC_ALGS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


# ---------------------------------------------------------------- the local signing identity

def ensure_local_identity(config_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Return (certificate chain PEM, private key PEM), creating a local CA + leaf on first use.

    Viewers show this identity as untrusted: no public trust list knows the local CA.
    """
    folder = Path(config_dir) if config_dir else user_config_dir()
    chain_path, key_path = folder / LOCAL_CHAIN_FILE, folder / LOCAL_KEY_FILE
    if chain_path.exists() and key_path.exists():
        return chain_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    chain_pem, key_pem = _make_local_identity()
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    chain_path.write_bytes(chain_pem)
    return chain_path, key_path


def _make_local_identity() -> tuple[bytes, bytes]:
    # The CA key signs the leaf and is then dropped: nothing can issue a second leaf from this machine's CA.
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name, leaf_name = _name(f"{PACK_NAME} local CA"), _name(f"{PACK_NAME} local signer")
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, is_ca=True)
    leaf = _certificate(leaf_name, ca_name, leaf_key.public_key(), ca_key, is_ca=False)
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return chain, key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{PACK_NAME} (self-made, untrusted)")])


def _certificate(subject, issuer, public_key, signing_key, is_ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    # C2PA accepts a leaf only with digitalSignature usage and an EKU from its list (emailProtection is one).
    usage = dict(digital_signature=not is_ca, key_cert_sign=is_ca, crl_sign=is_ca, content_commitment=False,
                 key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if not is_ca:
        builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                  critical=False))
    return builder.sign(signing_key, hashes.SHA256())


# ---------------------------------------------------------------- signing

def sign_video(src_mp4: str | Path, dst_mp4: str | Path, model_name: str, model_sha256: str,
               prompt: str | None = None, cert: str | Path | None = None, key: str | Path | None = None,
               config_dir: str | Path | None = None, loras=()) -> Path:
    """Write dst_mp4 = src_mp4 with an embedded C2PA manifest; the prompt is recorded only when given (opt-in).

    `loras`: (file name, sha256, strength) of each LoRA the model ran with, recorded beside the model.

    cert is a PEM chain (leaf first, no root needed) and key its PEM private key; with neither, the local
    identity from `ensure_local_identity(config_dir)` signs and viewers will report the signer as untrusted.
    """
    src, dst = Path(src_mp4), Path(dst_mp4)
    _require_mp4(src)
    for digest in (model_sha256, *(lora[1] for lora in loras)):
        if not _is_sha256_hex(digest):
            raise SpacetimeError(f"model_sha256 {digest!r} is not a sha256 hex digest; expected 64 hex "
                                 "characters; compute it with provenance.file_sha256(model_path)")
    signer = _signer(*_signing_files(cert, key, config_dir))
    builder = c2pa.Builder(_manifest(dst.name, model_name, model_sha256.lower(), prompt, loras))
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Write beside dst and rename: signing in place (dst == src) must not truncate the source being read.
    partial = dst.with_name(dst.name + ".signing")
    try:
        with open(src, "rb") as source, open(partial, "w+b") as dest:
            builder.sign(signer, "video/mp4", source, dest)
    except c2pa.C2paError as err:
        partial.unlink(missing_ok=True)
        raise SpacetimeError(f"C2PA signing of {src} failed ({err}); expected a playable mp4 and a matching "
                             "certificate/key pair; re-save the video or check --cert/--key") from err
    partial.replace(dst)
    return dst


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (model files are many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(title: str, model_name: str, model_sha256: str, prompt: str | None, loras=()) -> dict:
    generation = {"model": {"name": model_name, "sha256": model_sha256}}
    if loras:
        generation["loras"] = [{"name": name, "sha256": digest.lower(), "strength": strength}
                               for name, digest, strength in loras]
    if prompt is not None:
        generation["prompt"] = prompt
    created = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
               "softwareAgent": {"name": PACK_NAME, "version": pack_version()}}
    return {"claim_generator_info": [{"name": PACK_NAME, "version": pack_version()}],
            "title": title, "format": "video/mp4",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [created]}},
                           {"label": GENERATION_ASSERTION, "data": generation}]}


def pack_version() -> str:
    """The installed distribution's version, else the pyproject next to the package (a ComfyUI custom_nodes copy)."""
    try:
        return metadata.version(PACK_NAME)
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


def _signing_files(cert, key, config_dir) -> tuple[Path, Path]:
    if (cert is None) != (key is None):
        raise SpacetimeError(f"got cert={cert!r} and key={key!r}; expected both or neither; pass the key that "
                             "belongs to the certificate, or neither to use the local self-made identity")
    if cert is None:
        return ensure_local_identity(config_dir)
    return Path(cert), Path(key)


def _signer(cert_path: Path, key_path: Path) -> c2pa.Signer:
    chain_pem, certs = _read_chain(cert_path)
    key_pem, private_key = _read_key(key_path)
    if private_key.public_key().public_bytes(*_SPKI) != certs[0].public_key().public_bytes(*_SPKI):
        raise SpacetimeError(f"the key {key_path} does not belong to the certificate {cert_path}; expected the "
                             "private key of the first (leaf) certificate in the chain; pass the matching key")
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(_algorithm(private_key, key_path), chain_pem, key_pem, None))


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read_chain(path: Path) -> tuple[bytes, list[x509.Certificate]]:
    try:
        pem = path.read_bytes()
        certs = x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError) as err:
        raise SpacetimeError(f"could not read the certificate {path} ({err}); expected a PEM certificate chain "
                             "(leaf first); check the path or convert with `openssl x509 -outform PEM`") from err
    return pem, certs


def _read_key(path: Path):
    try:
        pem = path.read_bytes()
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError) as err:
        raise SpacetimeError(f"could not read the private key {path} ({err}); expected an unencrypted PEM key; "
                             "check the path or export it with `openssl pkcs8 -topk8 -nocrypt`") from err
    return pem, private_key


def _algorithm(private_key, key_path: Path) -> str:
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name in _EC_ALGS:
        return _EC_ALGS[private_key.curve.name]
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise SpacetimeError(f"the key {key_path} is a {type(private_key).__name__}; expected EC P-256/384/521, RSA "
                         "or Ed25519 (what C2PA signs with); issue a certificate for one of those key types")


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def _require_mp4(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError as err:
        raise SpacetimeError(f"could not open {path} ({err}); expected an mp4 file; check the path") from err
    if head[4:8] != b"ftyp":  # every ISO-BMFF file (mp4, mov) starts with an ftyp box
        raise SpacetimeError(f"{path} is not an mp4 (no ftyp box at the start); expected an mp4 video; "
                             "save the video as mp4 first")


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class ProvenanceReport:
    """What the manifest in a file says and whether it validates; `valid` ignores trust (see `trusted`)."""
    path: Path
    has_manifest: bool
    valid: bool = False
    trusted: bool = False
    failures: tuple[str, ...] = ()
    manifest: dict = field(default_factory=dict)

    def generation(self) -> dict:
        return _assertion(self.manifest, GENERATION_ASSERTION) or {}

    def text(self) -> str:
        """A human-readable report for the node and the CLI."""
        if not self.has_manifest:
            return f"{self.path}: no C2PA manifest"
        lines = [f"{self.path}: {'VALID' if self.valid else 'INVALID'} C2PA manifest"]
        lines += [f"  failed check: {code}" for code in self.failures if code != UNTRUSTED_CODE]
        if not self.trusted:
            lines.append("  signer: not on any trust list (expected for the pack's self-made local certificate)")
        lines += _summary_lines(self.manifest, self.generation())
        return "\n".join(lines)


def read_provenance(path: str | Path) -> ProvenanceReport:
    """Validate the C2PA manifest embedded in an mp4 and return what it says."""
    path = Path(path)
    _require_mp4(path)
    try:
        with open(path, "rb") as handle:
            reader = c2pa.Reader.try_create("video/mp4", handle)
            if reader is None:
                return ProvenanceReport(path=path, has_manifest=False)
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as err:
        raise SpacetimeError(f"could not parse {path} as mp4 ({err}); expected an intact mp4 file; "
                             "check that the download or copy finished") from err
    return _report(path, store)


def _report(path: Path, store: dict) -> ProvenanceReport:
    state = store.get("validation_state", "Invalid")
    results = store.get("validation_results", {}).get("activeManifest", {})
    failures = tuple(item["code"] for item in results.get("failure", []))
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    return ProvenanceReport(path=path, has_manifest=True, valid=state in ("Valid", "Trusted"),
                            trusted=state == "Trusted", failures=failures, manifest=manifest)


def _assertion(manifest: dict, label: str) -> dict | None:
    # The reader may append a version suffix to a label (c2pa.actions -> c2pa.actions.v2).
    for item in manifest.get("assertions", []):
        if item["label"] == label or item["label"].startswith(label + ".v"):
            return item["data"]
    return None


def _summary_lines(manifest: dict, generation: dict) -> list[str]:
    info = manifest.get("claim_generator_info", [{}])[0]
    actions = (_assertion(manifest, "c2pa.actions") or {}).get("actions", [])
    signer = manifest.get("signature_info", {})
    lines = [f"  generator: {info.get('name')} {info.get('version')}"]
    lines += [f"  action: {a.get('action')} ({a.get('digitalSourceType', 'no source type')})" for a in actions]
    if "model" in generation:
        lines.append(f"  model: {generation['model']['name']} sha256={generation['model']['sha256']}")
    lines += [f"  LoRA: {lora['name']} at {lora['strength']:g} sha256={lora['sha256']}"
              for lora in generation.get("loras", [])]
    lines.append(f"  prompt: {generation['prompt']}" if "prompt" in generation else "  prompt: not recorded")
    lines.append(f"  signed by: {signer.get('common_name')} (issuer {signer.get('issuer')}, {signer.get('alg')})")
    return lines
