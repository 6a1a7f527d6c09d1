"""The mobile integration guides cannot drift from the server (issue 17, part 4).

* ``docs/mobile/vectors.json`` holds fixed inputs and expected outputs for every byte string an
  app computes (binding, its hash, Play Integrity nonce / requestHash, Android attestation
  challenge, thumbprint, DPoP signing input and ``ath``, Android key id) and for every refusal
  the token endpoint answers; each output is recomputed here with the server's own code
  (``tests/mobile_vectors.py``), and the vector proofs pass the server's DPoP verifier.
* ``docs/mobile/ios.md`` and ``docs/mobile/android.md`` must show those values, and their
  refusal tables must give each reason the action the vectors (and the Kotlin) give it.
* The platform-independent Kotlin listings of android.md (fences ```` ```kotlin file=Name.kt ````)
  are compiled with Debian's ``kotlinc`` and run on the vectors' inputs, a software EC key
  standing in for the Android KeyStore: their bytes must be the server's, and their proofs and
  signatures must pass the server's verifiers. Swift has no compiler in Debian bookworm (its
  ``swift`` package is OpenStack's object store; ``swiftlang`` does not exist), so the Swift
  listings are held to the same vectors by the values ios.md shows, not compiled.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from attestation.android.chain import parse_chain
from attestation.android.key_signature import verify_key_signature
from attestation.binding import RequestBinding, grant_hash
from attestation.errors import Reason
from attestation.flows.android_devices import chain_from_wire
from attestation.testing import google_pki
from core.encoding import b64url_encode
from idp.oauth.errors import OAuthErrorCode
from sessions.dpop import verify_proof
from tests import mobile_vectors as mv

ROOT = Path(__file__).resolve().parent.parent
GUIDES = {name: ROOT / "docs" / "mobile" / f"{name}.md" for name in ("ios", "android")}
KOTLIN_FENCE = re.compile(r"^```kotlin file=(\w+\.kt)\n(.*?)^```", re.M | re.S)


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    return mv.load()


def guide(name: str) -> str:
    return GUIDES[name].read_text()


def vector_binding(case: dict[str, Any]) -> RequestBinding:
    given = case["input"]
    return RequestBinding(given["challenge"], given["client_id"], given["grant"], grant_hash(given["grant_secret"]),
                          dpop_jkt=given["dpop_jkt"], signals=given["signals"])


def verify_vector_proof(proof: str, case: dict[str, Any], settings: Any) -> str:
    """The server's verifier, at the vector's time, under the secret its nonce was signed with."""
    from datetime import UTC, datetime

    settings.SECRET_KEY = mv.VECTOR_SECRET
    given = case["input"]
    verified = verify_proof(proof, method=given["method"], url=given["url"], access_token=given.get("access_token"),
                            now=datetime.fromtimestamp(given["iat"], tz=UTC))
    return verified.jkt


# ----------------------------------------------------------------------------- (a) the server's bytes
def test_every_vector_output_is_what_the_server_computes(vectors: dict[str, Any]) -> None:
    recomputed = mv.expected(vectors)
    for section in ("binding", "thumbprint", "dpop_proof", "der_to_jose", "android_key_id"):
        assert vectors[section] == recomputed[section], f"{section}: run tests/mobile_vectors.write() and update the guides"


def test_the_devicecheck_vector_is_the_servers(vectors: dict[str, Any]) -> None:
    """The binding's DeviceCheck member (issue 17 part 3): present only with a token."""
    case = next(case for case in vectors["binding"] if "devicecheck_token" in case["input"])
    assert case["output"] == mv.binding_output(case["input"])
    assert '"devicecheck":"' in case["output"]["client_data"]
    without = mv.binding_output({**case["input"], "devicecheck_token": ""})
    assert without == next(c for c in vectors["binding"] if c["name"] == "enroll")["output"]


def test_the_refusals_are_worded_as_the_server_words_them(vectors: dict[str, Any]) -> None:
    recomputed = mv.refusals()
    assert [r["error_description"] for r in vectors["refusals"]] == [r["error_description"] for r in recomputed]
    assert vectors["refusals"] == recomputed
    for row in vectors["refusals"]:
        if "source" in row:
            assert row["source_text"] in (ROOT / row["source"]).read_text(), row
    assert {row["error"] for row in vectors["refusals"]} <= {code.value for code in OAuthErrorCode}
    reasons = {row["reason"] for row in vectors["refusals"] if "reason" in row}
    assert reasons == {reason.value for reason in Reason}


def test_the_binding_is_canonical_json_of_the_inputs(vectors: dict[str, Any]) -> None:
    """The escaping vector pins what a JSON library would get wrong: '/' stays, non-ASCII and
    DEL become lower-case \\u escapes, an emoji two of them."""
    escaping = next(case for case in vectors["binding"] if case["name"] == "escaping")["output"]["client_data"]
    assert escaping.isascii() and "app/\\u00fc" in escaping and "\\ud83d\\ude00" in escaping and "\\u007f" in escaping
    refresh = next(case for case in vectors["binding"] if case["name"] == "refresh")
    assert vector_binding(refresh).signals == refresh["input"]["signals"]
    assert '"signals":{"debugger_attached":false,"os_version":"18.1","screen_captured":false}' in (
        refresh["output"]["client_data"])


def test_the_thumbprint_and_ath_match_rfc_9449s_own_examples(vectors: dict[str, Any]) -> None:
    rfc = next(case for case in vectors["thumbprint"] if case["name"].startswith("rfc9449"))
    assert rfc["output"]["jkt"] == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 9449 §6.1
    userinfo = next(case for case in vectors["dpop_proof"] if case["name"] == "userinfo")
    assert userinfo["output"]["ath"] == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"  # RFC 9449 §7.1


@pytest.mark.parametrize("name", ["token-endpoint", "userinfo"])
def test_a_proof_over_the_vector_signing_input_passes_the_servers_verifier(
    name: str, vectors: dict[str, Any], settings: Any
) -> None:
    case = next(case for case in vectors["dpop_proof"] if case["name"] == name)
    key = mv.private_key(vectors["keys"]["dpop"])
    signing_input = case["output"]["signing_input"]
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    proof = f"{signing_input}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    dpop_key = next(case for case in vectors["thumbprint"] if case["name"] == "dpop-key")
    assert verify_vector_proof(proof, case, settings) == dpop_key["output"]["jkt"]


# ----------------------------------------------------------------------------- (b) the guides show them
def _shown_values(vectors: dict[str, Any], platform: str) -> list[str]:
    values: list[str] = []
    for case in vectors["binding"] if platform == "ios" else android_bindings(vectors):
        out = case["output"]
        values += [out["client_data"], out["client_data_hash_hex"], out["request_hash"], out["grant_hash"]]
    values += [case["output"]["jkt"] for case in vectors["thumbprint"]]
    for case in vectors["dpop_proof"]:
        values += [case["output"]["signing_input"], case["output"]["htu"], case["output"].get("ath", "")]
    if platform == "android":
        values += [vectors["android_key_id"]["output"]["key_id_hex"]]
        values += [case["output"]["jose_hex"] for case in vectors["der_to_jose"]]
    return [value for value in values if value]


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_the_guide_shows_every_vector_value(platform: str, vectors: dict[str, Any]) -> None:
    text = guide(platform)
    missing = [value for value in _shown_values(vectors, platform) if value not in text]
    assert not missing, f"{GUIDES[platform].name} does not show: {missing}"
    assert "vectors.json" in text


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_the_refusal_table_gives_each_reason_the_vectors_action(platform: str, vectors: dict[str, Any]) -> None:
    lines = [line for line in guide(platform).splitlines() if line.startswith("|")]
    for row in vectors["refusals"]:
        reason = row.get("reason")
        if reason:
            wanted = [f"`{reason}`", f"`{row['action']}`", f"`{row['error']}`"]
        else:
            wanted = [f"`{row['error']}`", f"`{row['action']}`", _table_key(row)]
        assert any(all(word in line for word in wanted) for line in lines), f"{platform}: no table row {wanted}"


def test_the_swift_next_step_gives_the_vectors_actions(vectors: dict[str, Any]) -> None:
    """Swift is not compiled here: at least its reason table must be the vectors' (and Kotlin's)."""
    swift = dict(re.findall(r'^ {4}"([a-z_]+)": \.(\w+),$', guide("ios"), re.M))
    as_upper = {name: re.sub(r"(?<!^)(?=[A-Z])", "_", name.replace("DPoP", "Dpop")).upper() for name in swift.values()}
    assert {reason: as_upper[action] for reason, action in swift.items()} == mv.ATTESTATION_ACTIONS
    kotlin = dict(re.findall(r'^ {4}"([a-z_]+)" to Next\.(\w+),?$', guide("android"), re.M))
    assert kotlin == mv.ATTESTATION_ACTIONS


def _table_key(row: dict[str, Any]) -> str:
    """The words a table row quotes to name a refusal that has no attestation reason."""
    description = row["error_description"]
    return description.split(" (")[0].split(":")[0].rstrip(".") if description else ""


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_the_registration_commands_use_options_create_client_has(platform: str) -> None:
    from idp.management.commands.create_client import Command

    options = {option for action in Command().create_parser("manage.py", "create_client")._actions
               for option in action.option_strings}
    blocks = re.findall(r"^```sh\n(.*?)^```", guide(platform), re.M | re.S)
    used = {flag for block in blocks for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", block)}
    assert "--require-attestation" in used and used <= options, used - options


# ----------------------------------------------------------------------------- Swift, parsed
SWIFT_FENCE = re.compile(r"^```swift\n(.*?)^```", re.M | re.S)


def swift_errors(source: str) -> list[str]:
    """Syntax errors of a Swift listing, by tree-sitter's Swift grammar (no compiler in Debian)."""
    import tree_sitter
    import tree_sitter_swift

    root = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language())).parse(source.encode()).root_node
    found: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"line {node.start_point[0] + 1}: {(node.text or b'')[:60]!r}")
        stack.extend(node.children)
    return found


def test_the_swift_listings_parse() -> None:
    listings = SWIFT_FENCE.findall(guide("ios"))
    assert len(listings) >= 10
    broken = {i: swift_errors(body) for i, body in enumerate(listings) if swift_errors(body)}
    assert not broken
    assert swift_errors("func f() { let x = [1, 2 }")  # the check can fail


# ----------------------------------------------------------------------------- Kotlin, compiled and run
def kotlin_listings() -> dict[str, str]:
    return dict(KOTLIN_FENCE.findall(guide("android")))


def test_android_md_marks_its_platform_independent_listings() -> None:
    assert set(kotlin_listings()) == {"VigilBinding.kt", "VigilDpop.kt", "VigilAndroidKey.kt", "VigilNextStep.kt"}


def android_bindings(vectors: dict[str, Any]) -> list[dict[str, Any]]:
    """The binding vectors an Android app computes (DeviceCheck is Apple's)."""
    return [case for case in vectors["binding"] if "devicecheck_token" not in case["input"]]


def kt(value: Any) -> str:
    """A Kotlin literal for a JSON value of the vectors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}L"
    if isinstance(value, dict):
        pairs = ", ".join(f"{kt(k)} to {kt(v)}" for k, v in value.items())
        return f"mapOf<String, Any>({pairs})"
    out = []
    for unit in value.encode("utf-16-be").hex(" ", 2).split():
        code = int(unit, 16)
        out.append(chr(code) if 0x20 <= code < 0x7F and chr(code) not in '"\\$' else f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def kotlin_main(vectors: dict[str, Any], chain_pem: str) -> str:
    keys = vectors["keys"]
    lines = [
        "package com.example.vigil",
        "import java.math.BigInteger",
        "import java.security.*",
        "import java.security.interfaces.ECPublicKey",
        "import java.security.spec.*",
        "fun unb64(s: String) = BigInteger(1, java.util.Base64.getUrlDecoder().decode(s))",
        "val params: ECParameterSpec = AlgorithmParameters.getInstance(\"EC\").apply { init(ECGenParameterSpec(\"secp256r1\")) }"
        ".getParameterSpec(ECParameterSpec::class.java)",
        "fun priv(d: String): PrivateKey = KeyFactory.getInstance(\"EC\").generatePrivate(ECPrivateKeySpec(unb64(d), params))",
        "fun pub(x: String, y: String) = KeyFactory.getInstance(\"EC\")"
        ".generatePublic(ECPublicKeySpec(ECPoint(unb64(x), unb64(y)), params)) as ECPublicKey",
        "fun hex(b: ByteArray) = b.joinToString(\"\") { String.format(\"%02x\", it) }",
        "fun main() {",
        f"  val dpop = DpopKey(priv({kt(keys['dpop']['d'])}), pub({kt(keys['dpop']['x'])}, {kt(keys['dpop']['y'])}))",
        f"  val androidPub = pub({kt(keys['android']['x'])}, {kt(keys['android']['y'])})",
        f"  val androidPriv = priv({kt(keys['android']['d'])})",
        "  println(\"jkt.dpop-key=\" + dpop.jkt)",
    ]
    for case in vectors["thumbprint"]:
        lines.append(f"  println(\"jkt.{case['name']}=\" + jwkThumbprint({kt(case['input']['x'])}, {kt(case['input']['y'])}))")
    for case in android_bindings(vectors):
        given, name = case["input"], case["name"].replace("-", "_")
        lines += [
            f"  val b_{name} = RequestBinding({kt(given['challenge'])}, {kt(given['client_id'])}, {kt(given['grant'])}, "
            f"{kt(given['grant_secret'])}, {kt(given['dpop_jkt'])}, {kt(given['signals'])})",
            f"  println(\"binding.{name}.client_data=\" + String(b_{name}.clientData(), Charsets.US_ASCII))",
            f"  println(\"binding.{name}.client_data_hash_hex=\" + hex(b_{name}.clientDataHash()))",
            f"  println(\"binding.{name}.request_hash=\" + b_{name}.requestHash())",
            f"  println(\"binding.{name}.grant_hash=\" + grantHash({kt(given['grant_secret'])}))",
            f"  println(\"binding.{name}.signals=\" + b_{name}.signalsParameter())",
        ]
    for case in vectors["dpop_proof"]:
        given = case["input"]
        token = kt(given["access_token"]) if "access_token" in given else "null"
        nonce = kt(given["nonce"]) if "nonce" in given else "null"
        lines.append(f"  println(\"proof.{case['name']}=\" + dpop.proof({kt(given['method'])}, {kt(given['url'])}, "
                     f"{token}, {nonce}, {given['iat']}L, {kt(given['jti'])}))")
    for case in vectors["der_to_jose"]:
        lines.append(f"  println(\"jose.{case['name']}=\" + hex(derToJose(BigInteger({kt(case['input']['der_hex'])}, 16)"
                     ".toByteArray().let { if (it[0] == 0.toByte()) it.copyOfRange(1, it.size) else it })))")
    lines += [
        "  println(\"android.key_id=\" + androidKeyId(androidPub))",
        "  println(\"android.signature=\" + clientDataSignature(androidPriv, b_refresh))",
        f"  val chain = java.security.cert.CertificateFactory.getInstance(\"X.509\")"
        f".generateCertificates(java.io.ByteArrayInputStream({kt(chain_pem)}.toByteArray())).toTypedArray()",
        "  println(\"android.chain=\" + chainParameter(chain))",
    ]
    for i, row in enumerate(vectors["refusals"]):
        lines.append(f"  println(\"next.{i}=\" + nextStep({row['status']}, {kt(row['error'])}, "
                     f"{kt(row['error_description'])}))")
        lines.append(f"  println(\"reason.{i}=\" + attestationReason({kt(row['error_description'])}))")
    lines.append("}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def kotlin_run(vectors: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """Compile the guide's listings with a main over the vectors (one kotlinc run) and run it."""
    work = tmp_path_factory.mktemp("kotlin")
    for name, body in kotlin_listings().items():
        (work / name).write_text(body)
    key = ec.generate_private_key(ec.SECP256R1())
    chain_pem = google_pki.to_pem(google_pki.attestation_chain(key.public_key(), google_pki.LeafSpec(challenge=b"x" * 32)))
    (work / "Main.kt").write_text(kotlin_main(vectors, chain_pem))
    kotlinc = shutil.which("kotlinc") or "kotlinc"
    sources = sorted(str(path) for path in work.glob("*.kt"))
    built = subprocess.run([kotlinc, "-nowarn", *sources, "-include-runtime", "-d", str(work / "guide.jar")],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run(["java", "-jar", str(work / "guide.jar")], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    printed = dict(line.split("=", 1) for line in ran.stdout.splitlines())
    return printed, chain_pem


@pytest.mark.kotlin
def test_the_kotlin_listings_compute_the_servers_binding_bytes(
    vectors: dict[str, Any], kotlin_run: tuple[dict[str, str], str]
) -> None:
    printed, _ = kotlin_run
    for case in android_bindings(vectors):
        name = case["name"].replace("-", "_")
        for field in ("client_data", "client_data_hash_hex", "request_hash", "grant_hash"):
            assert printed[f"binding.{name}.{field}"] == case["output"][field], (case["name"], field)
        assert json.loads(printed[f"binding.{name}.signals"]) == case["input"]["signals"]
    for case in vectors["thumbprint"]:
        assert printed[f"jkt.{case['name']}"] == case["output"]["jkt"]
    for case in vectors["der_to_jose"]:
        assert printed[f"jose.{case['name']}"] == case["output"]["jose_hex"]


@pytest.mark.kotlin
@pytest.mark.parametrize("name", ["token-endpoint", "userinfo"])
def test_the_kotlin_dpop_proofs_pass_the_servers_verifier(
    name: str, vectors: dict[str, Any], kotlin_run: tuple[dict[str, str], str], settings: Any
) -> None:
    printed, _ = kotlin_run
    case = next(case for case in vectors["dpop_proof"] if case["name"] == name)
    proof = printed[f"proof.{name}"]
    assert proof.rsplit(".", 1)[0] == case["output"]["signing_input"]
    assert verify_vector_proof(proof, case, settings) == printed["jkt.dpop-key"]


@pytest.mark.kotlin
def test_the_kotlin_android_evidence_passes_the_servers_checks(
    vectors: dict[str, Any], kotlin_run: tuple[dict[str, str], str]
) -> None:
    printed, chain_pem = kotlin_run
    assert printed["android.key_id"] == vectors["android_key_id"]["output"]["key_id_hex"]
    refresh = next(case for case in vectors["binding"] if case["name"] == "refresh")
    public = mv.private_key(vectors["keys"]["android"]).public_key()
    verify_key_signature(public, printed["android.signature"], vector_binding(refresh))  # raises if wrong
    as_sent = [cert.der for cert in parse_chain(chain_from_wire(printed["android.chain"]))]
    assert as_sent == [cert.der for cert in parse_chain(chain_pem)] and len(as_sent) == 3
    pem = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pem.hex() == vectors["android_key_id"]["output"]["spki_hex"]


@pytest.mark.kotlin
def test_the_kotlin_next_step_is_the_tables_action(
    vectors: dict[str, Any], kotlin_run: tuple[dict[str, str], str]
) -> None:
    printed, _ = kotlin_run
    wrong = [(row["error"], row["error_description"], printed[f"next.{i}"], row["action"])
             for i, row in enumerate(vectors["refusals"]) if printed[f"next.{i}"] != row["action"]]
    assert not wrong
    for i, row in enumerate(vectors["refusals"]):
        said = re.search(r"Device attestation failed(?:: | \()([a-z0-9_]+)", row["error_description"])
        assert printed[f"reason.{i}"] == (said.group(1) if said else "null"), row
        if said and row.get("reason"):
            assert said.group(1) == row["reason"]
    assert any(printed[f"reason.{i}"] == "device_mismatch" and row["error"] == "invalid_grant"
               for i, row in enumerate(vectors["refusals"]))
