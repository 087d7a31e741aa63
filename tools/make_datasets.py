"""Generate the shipped scenario datasets (src/sealroom/data/*.jsonl), deterministically.

Three synthetic engineering work logs for the demo:

* ``amiller``: TEE development on dstack / Phala (remote attestation, reproducible
  builds, TLS in the TEE, on-chain authorization, KMS and secrets, production
  debugging) plus incidental topics.
* ``cloudmolty``: GCP confidential VMs (TDX + TPM dual attestation, SCALE
  encoding, cloud APIs) with some topics shared with amiller.
* ``newbiemolty``: a beginner's learning log (docker basics, what a TEE is,
  first attestation attempts, tutorials, confusion).

Records are composed from per-topic sentence templates whose slots are filled
from vocabularies (commands, error messages, files, versions, people, numbers),
so technical terms recur with realistic, skewed frequencies and a long tail of
rare ones. The only randomness is a seeded :class:`random.Random`; running the
script twice gives byte-identical files (a test checks the shipped files).

    python tools/make_datasets.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20260304
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "sealroom" / "data"

# --- shared vocabularies --------------------------------------------------------------------

V: dict[str, Sequence[str]] = {
    "person": [
        "Kevin",
        "Hang",
        "Leechael",
        "Shelven",
        "Marvin",
        "Yan",
        "Andrew",
        "Sarah",
        "Jun",
        "Tina",
        "Dmitri",
        "Priya",
        "Omar",
        "Lena",
        "Rafael",
        "Mina",
        "Zhang Wei",
        "Nadia",
    ],
    "dur": [
        "20 minutes",
        "an hour",
        "two hours",
        "half a day",
        "most of the afternoon",
        "45 min",
        "three hours",
        "the whole morning",
        "10 minutes",
    ],
    "num": ["3", "4", "5", "7", "8", "12", "16", "20", "32", "64", "100", "128", "256"],
    "pct": ["3%", "8%", "12%", "15%", "20%", "35%", "40%", "2x", "5x"],
    "ver": ["0.3.6", "0.4.0", "0.4.2", "0.5.0", "0.5.1", "0.5.3", "0.5.4", "0.5.5"],
    "pr": ["#412", "#418", "#433", "#457", "#460", "#471", "#489", "#502", "#517", "#530", "#544"],
    "mood": [
        "Slow day.",
        "Good progress today.",
        "Frustrating afternoon.",
        "Productive session.",
        "Bit of a rabbit hole.",
        "Small win.",
        "Not much done, lots learned.",
        "Long day.",
        "Need coffee.",
        "Back after a short break.",
        "Quiet day, mostly reading.",
    ],
}

# --- amiller --------------------------------------------------------------------------------

A: dict[str, Sequence[str]] = {
    "proj_att": ["dstack", "dstack-verifier", "tee-notary", "attest-bench"],
    "proj_build": ["meta-dstack", "dstack-os-image", "reproducible-image", "dstack"],
    "proj_tls": ["dstack-gateway", "ra-tls-proxy", "tee-notary"],
    "proj_chain": ["dstack-kms-auth", "onchain-auth-contracts", "dstack-kms"],
    "proj_kms": ["dstack-kms", "dstack", "secret-sealer"],
    "proj_prod": ["phala-cloud-ops", "dstack", "dstack-gateway", "tee-notary"],
    "proj_misc": ["papers", "teaching", "admin", "tee-notary", "reading-group"],
    "proj_gpu": ["private-ml-sdk", "gpu-tee-bench"],
    "att_field": [
        "RTMR3",
        "RTMR0",
        "MRTD",
        "report_data",
        "mr_config_id",
        "TCB SVN",
        "RTMR1",
        "xfam",
        "td_attributes",
    ],
    "tcb": ["OutOfDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded", "UpToDate"],
    "att_err": [
        "quote verification failed: invalid signature",
        "PCK certificate chain expired",
        "unknown FMSPC",
        "collateral expired",
        "ConfigurationAndSWHardeningNeeded",
        "QE identity mismatch",
        "event log replay does not match RTMR3",
    ],
    "build_tool": ["nix", "yocto", "buildkit", "bitbake", "mkosi", "docker buildx"],
    "build_art": [
        "OS image",
        "rootfs",
        "initramfs",
        "kernel",
        "docker image",
        "OVMF firmware",
        "guest image",
        "container image",
    ],
    "build_diff": [
        "timestamps in the tar layers",
        "file ordering in the rootfs",
        "a different gzip level",
        "the build id in the kernel",
        "locale in man pages",
        "pip wheel metadata",
        "SOURCE_DATE_EPOCH not set",
        "a floating base image tag",
    ],
    "tls_thing": [
        "RA-TLS certificate",
        "TLS certificate",
        "ACME account key",
        "certificate transparency log",
        "wildcard certificate",
        "TLS termination",
        "SNI routing",
    ],
    "tls_err": [
        "certificate signed by unknown authority",
        "handshake failure",
        "ACME rate limit hit",
        "SNI mismatch",
        "OCSP stapling error",
    ],
    "chain": ["Base", "Ethereum mainnet", "Base Sepolia", "a local anvil chain", "Optimism"],
    "contract": [
        "KmsAuth",
        "AppAuth",
        "the app registry contract",
        "the upgrade governance contract",
    ],
    "kms_thing": [
        "root key",
        "app key",
        "disk encryption key",
        "env encryption key",
        "key derivation path",
        "KMS root CA",
        "signing key for the app",
    ],
    "prod_sym": [
        "the CVM stuck at boot",
        "OOM kills in the guest",
        "containers restarting in a loop",
        "a disk full error",
        "gateway 502 errors",
        "clock drift inside the CVM",
        "high tail latency",
        "the guest agent not responding",
        "a stuck image pull",
    ],
    "prod_tool": [
        "serial console",
        "guest agent logs",
        "journalctl",
        "vmm logs",
        "dmesg",
        "docker logs",
        "prometheus metrics",
        "the status page",
    ],
    "incidental": [
        "Reviewed two papers for the workshop.",
        "Office hours with students about the project.",
        "Wrote slides for the talk next week.",
        "Grant report is due, spent time on it.",
        "Reading group discussed the TEE.fail paper.",
        "Travel day, answered email on the train.",
        "Mentoring call about a student thesis on verifiable computing.",
        "Sketched a blog post about why attestation is not enough on its own.",
        "Meeting about the hackathon judging.",
        "Caught up on the Flashbots TEE forum thread.",
    ],
}

A_TOPICS: list[tuple[str, int, str, list[str]]] = [
    # (tag, weight, project list key, templates)
    (
        "remote-attestation",
        16,
        "proj_att",
        [
            "Verified a TDX quote from the dstack CVM with dcap-qvl.",
            "Remote attestation flow works end to end now: quote, collateral, verification.",
            "Quote verification failed with {att_err}; had to refresh the collateral from PCCS.",
            "Checked {att_field} in the TDX quote against the expected measurement.",
            "Replayed the event log to recompute RTMR3 and it matched the quote.",
            "The attestation report binds the app's public key through report_data.",
            "Wrote a small verifier that parses the TDX quote and checks the TCB status.",
            "Remote attestation docs need a diagram of what {att_field} measures.",
            "Compared Intel's PCS with our own PCCS cache for collateral freshness.",
            "TCB status came back as {tcb} on the older machines.",
            "Explained remote attestation to {person}: the quote proves which code runs, not that it is correct.",
            "Added quote verification to the CI so every release checks its own attestation.",
            "Event log parsing choked on a new event type from the kernel.",
            "Measurement of the compose file goes into RTMR3 through the event log.",
        ],
    ),
    (
        "reproducible-builds",
        13,
        "proj_build",
        [
            "Reproducible build of the {build_art} with {build_tool} is almost there.",
            "Two builds of the {build_art} differed because of {build_diff}.",
            "Got a bit-for-bit reproducible build of the {build_art} on two machines.",
            "The measurement of the OS image only means something if the build is reproducible.",
            "Pinned every base image by digest to make the reproducible build stable.",
            "Used diffoscope to compare the two {build_art} outputs; culprit was {build_diff}.",
            "Documented how a third party can rebuild the {build_art} and compare the measurement.",
            "Reproducible builds with {build_tool} take {dur} on the CI runner.",
            "{person} rebuilt the image independently and got the same MRTD.",
            "Set SOURCE_DATE_EPOCH everywhere in the build and the docker image hash finally stabilised.",
        ],
    ),
    (
        "tls-in-tee",
        10,
        "proj_tls",
        [
            "The {tls_thing} is generated inside the TEE so the private key never leaves the CVM.",
            "RA-TLS handshake now carries the TDX quote in a certificate extension.",
            "Debugging {tls_err} between the gateway and the app.",
            "Gateway does TLS termination inside the CVM; clients can check the certificate transparency log.",
            "Moved the ACME account key into the TEE; certificates are issued from inside the CVM.",
            "TLS in TEE writeup: why a domain certificate is only trustworthy if the key was born in the enclave.",
            "Zero-trust HTTPS demo works: certificate transparency entry plus attestation of the key.",
            "{tls_err} again after the certificate rotation.",
            "Wildcard certificate for the app domain is now requested by the gateway inside the TEE.",
        ],
    ),
    (
        "onchain-authorization",
        10,
        "proj_chain",
        [
            "On-chain authorization: the KMS only releases keys if {contract} on {chain} allows the compose hash.",
            "Deployed {contract} to {chain} and registered the app id.",
            "The compose hash of the new release has to be added to the allowlist before the upgrade.",
            "Upgrade governance for apps: a multisig approves new compose hashes on chain.",
            "Wrote tests for {contract}: unknown compose hash must be rejected.",
            "On-chain authorization makes upgrades auditable: every allowed compose hash is an event on {chain}.",
            "Gas costs of registering a compose hash on {chain} are negligible.",
            "KMS checks the app id and compose hash against the smart contract before key derivation.",
            "{person} asked whether on-chain authorization leaks which apps we run; compose hashes are public anyway.",
        ],
    ),
    (
        "kms-secrets",
        13,
        "proj_kms",
        [
            "KMS derives the {kms_thing} from the app id so it survives CVM migration.",
            "Encrypted environment variables are decrypted only inside the CVM with the env encryption key.",
            "Key rotation for the {kms_thing} needs a migration plan.",
            "Sealed secrets to the KMS public key; the operator never sees them.",
            "KMS replication: a new KMS node gets the root key only after attesting itself.",
            "Reviewed the key derivation path scheme for app keys in the KMS.",
            "Bug in KMS: the {kms_thing} was derived with the wrong path after an upgrade.",
            "Secrets management story: users encrypt env vars client side to the KMS-provided public key.",
            "Threat model notes: a compromised KMS node leaks every app key, so KMS must run in a TEE too.",
            "Benchmarked KMS key derivation: {num} ms per request.",
            "Wrote docs on how app keys and the disk encryption key are derived by the KMS.",
        ],
    ),
    (
        "production-debugging",
        11,
        "proj_prod",
        [
            "Production debugging: {prod_sym}; found the cause in the {prod_tool}.",
            "Users reported {prod_sym}. Looked at the {prod_tool} first.",
            "Incident: {prod_sym} on {num} CVMs after the dstack {ver} rollout.",
            "Added more logging to the guest agent so production debugging is less blind.",
            "Hard to debug production issues inside a TEE without breaking confidentiality; we only ship metrics out.",
            "Postmortem for {prod_sym}: root cause was a memory limit in the docker compose file.",
            "Rolled back dstack to {ver} while we investigate {prod_sym}.",
            "Set up alerts on the {prod_tool} for {prod_sym}.",
        ],
    ),
    (
        "dstack-platform",
        12,
        "proj_prod",
        [
            "Deployed a new dstack CVM on Phala Cloud with a docker compose file.",
            "Upgraded the dstack VMM to {ver}; the CVM boots in {num} seconds.",
            "The app id is derived from the compose hash and the deployer.",
            "Phala Cloud dashboard now shows the attestation of each CVM.",
            "Reviewed {pr} for dstack: cleaner guest agent API.",
            "dstack {ver} release notes: KMS onboarding, gateway fixes, event log changes.",
            "Walked {person} through deploying a docker compose app to a dstack CVM.",
            "Merged {pr}: the docker compose file is measured before any container starts.",
        ],
    ),
    (
        "gpu-tee",
        4,
        "proj_gpu",
        [
            "H100 in confidential computing mode works inside the CVM; GPU attestation via the NVIDIA verifier.",
            "GPU TEE overhead for inference is about {pct} on the benchmark.",
            "Private ML SDK: the model weights are only decrypted inside the GPU TEE.",
            "Combined the TDX quote and the NVIDIA GPU attestation in one report.",
        ],
    ),
    ("incidental", 6, "proj_misc", ["{incidental}"]),
]

A_FILLER = [
    "{mood}",
    "Pushed the changes in {pr}.",
    "Paired with {person} for {dur}.",
    "Spent {dur} on it.",
    "Need to write this up properly.",
    "Will continue tomorrow.",
    "Asked {person} for a review.",
    "CI is green again.",
    "Opened an issue to track it.",
    "TODO: add tests.",
    "Left notes in the design doc.",
]

# --- cloudmolty -----------------------------------------------------------------------------

C: dict[str, Sequence[str]] = {
    "proj_gcp": ["gcp-cvm-bench", "cloud-attest-api", "molty-infra"],
    "proj_tpm": ["tpm-quote-bridge", "cloud-attest-api", "dual-attest"],
    "proj_scale": ["scale-codec-rs", "substrate-bridge", "dual-attest"],
    "proj_api": ["cloud-attest-api", "molty-infra"],
    "proj_misc": ["molty-infra", "notes"],
    "machine": [
        "c3-standard-4",
        "c3-standard-8",
        "n2d-standard-4",
        "c3-standard-22",
        "a3-highgpu-1g",
    ],
    "zone": ["us-central1-a", "us-central1-b", "europe-west4-a", "asia-southeast1-b"],
    "image": ["ubuntu-2404-lts", "cos-tdx", "ubuntu-2204-tdx", "rhel-9-tdx"],
    "pcr": ["PCR0", "PCR4", "PCR7", "PCR8", "PCR9", "PCR14"],
    "tpm_err": [
        "TPM_RC_SIGNATURE",
        "TPM_RC_POLICY_FAIL",
        "AK certificate not found in NV index",
        "quote nonce mismatch",
        "PCR bank sha1 not enabled",
        "EK certificate chain invalid",
    ],
    "scale_type": [
        "Compact<u128>",
        "Vec<u8>",
        "Option<AccountId>",
        "an enum with 12 variants",
        "BTreeMap<u32, H256>",
        "a nested struct",
        "bool",
    ],
    "scale_err": [
        "Could not decode `Call`",
        "Not enough data to fill buffer",
        "Invalid compact prefix",
        "Enum variant index out of range",
        "Input too large for Compact<u32>",
    ],
    "api": [
        "Compute Engine API",
        "Cloud Logging API",
        "IAM API",
        "Confidential Space API",
        "Secret Manager API",
        "Cloud KMS API",
        "metadata server",
    ],
    "api_err": [
        "429 Too Many Requests",
        "403 PERMISSION_DENIED",
        "quota exceeded for CPUS",
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "invalid service account scope",
        "503 from the metadata server",
    ],
    "cloud_tool": ["gcloud", "terraform", "the Go client library", "the REST API", "pulumi"],
    "incidental": [
        "Team sync about the quarterly roadmap.",
        "Interviewed a candidate for the infra role.",
        "Updated the on-call runbook.",
        "Cleaned up old test projects to save billing.",
        "Read the GCP confidential computing whitepaper again.",
        "Wrote a short summary for the weekly update.",
    ],
}

C_TOPICS: list[tuple[str, int, str, list[str]]] = [
    (
        "gcp-confidential-vm",
        16,
        "proj_gcp",
        [
            "Created a confidential VM with TDX on {machine} in {zone}.",
            "gcloud compute instances create with --confidential-compute-type=TDX works for {image}.",
            "Confidential VM boot time on {machine} is about {num} seconds.",
            "GCP confidential VMs with TDX are only in a few zones; {zone} ran out of capacity.",
            "Compared SEV-SNP and TDX confidential VMs on GCP: TDX gives us a real TDX quote.",
            "Built a custom {image} image for the confidential VM with the TDX guest kernel.",
            "Shielded VM options interfere with the confidential VM settings in terraform.",
            "Confidential VM costs about {pct} more than the same {machine} without TDX.",
            "Benchmarked disk IO in the confidential VM: {pct} slower with bounce buffers.",
        ],
    ),
    (
        "tdx-tpm-dual-attestation",
        18,
        "proj_tpm",
        [
            "Dual attestation: the TDX quote and the vTPM quote must be bound to the same nonce.",
            "Read {pcr} from the vTPM and compared it with the measured boot event log.",
            "vTPM quote verification failed: {tpm_err}.",
            "The AK certificate from the vTPM chains to Google's CA; checked it with go-tpm-tools.",
            "TDX + TPM dual attestation gives both the TD measurement and the measured boot PCRs.",
            "Binding the TPM quote to the TDX quote through report_data took {dur} to get right.",
            "Event log replay for {pcr} matches the TPM quote now.",
            "Launch endorsement from Google signs the firmware measurement of the confidential VM.",
            "Wrote the dual attestation verifier: TDX quote via DCAP, TPM quote via the AK certificate.",
            "{pcr} changes after every kernel update, so the policy pins a list of allowed values.",
            "TPM quote plus TDX quote in one attestation bundle, serialized with SCALE encoding.",
            "Compared RTMR values in the TDX quote with PCR values in the vTPM quote.",
        ],
    ),
    (
        "scale-encoding",
        13,
        "proj_scale",
        [
            "SCALE encoding of {scale_type} differs between the Rust and Python implementations.",
            "Decode error: {scale_err}.",
            "Switched to parity-scale-codec {ver} for the attestation bundle.",
            "Wrote property tests for SCALE encoding round trips of {scale_type}.",
            "SCALE codec compact encoding for lengths tripped me up again.",
            "The substrate metadata changed the call index, so SCALE decoding broke.",
            "Documented the SCALE encoding layout of the attestation bundle for the verifier team.",
            "Fuzzed the SCALE decoder with {num} thousand random inputs; found one panic.",
        ],
    ),
    (
        "cloud-apis",
        14,
        "proj_api",
        [
            "Calling the {api} from {cloud_tool} returns {api_err}.",
            "Service account for the attestation service needs the compute.instances.get IAM role.",
            "Rate limit on the {api}: {api_err} above {num} requests per second.",
            "Automated confidential VM creation with {cloud_tool}.",
            "The {api} pagination is different from the other cloud APIs.",
            "Retried {api_err} with exponential backoff in the cloud API client.",
            "Moved secrets to Secret Manager instead of instance metadata.",
            "Cloud Logging now collects the attestation verifier logs from each confidential VM.",
            "IAM policy review for the cloud API service account with {person}.",
        ],
    ),
    (
        "remote-attestation",
        10,
        "proj_tpm",
        [
            "Verified the TDX quote with dcap-qvl; TCB status up to date.",
            "Remote attestation of the confidential VM: quote, collateral, then policy check.",
            "Quote verification needs fresh collateral from Intel PCS; cached it for {dur}.",
            "The event log from the confidential VM includes the kernel command line.",
            "Remote attestation docs for the team: what the TDX quote proves and what it does not.",
            "Checked RTMR values in the TDX quote against the expected measurement.",
        ],
    ),
    (
        "ci-testing",
        5,
        "proj_api",
        [
            "Integration tests now spin up a real confidential VM on each release.",
            "CI pipeline takes {dur}; most of it is waiting for the VM.",
            "Flaky test in the attestation service traced to {api_err}.",
        ],
    ),
    ("incidental", 5, "proj_misc", ["{incidental}"]),
]

C_FILLER = [
    "{mood}",
    "Opened {pr}.",
    "Synced with {person}.",
    "Spent {dur} on it.",
    "Will revisit after the weekend.",
    "Wrote it down in the team wiki.",
    "Tests pass locally.",
]

# --- newbiemolty ----------------------------------------------------------------------------

N: dict[str, Sequence[str]] = {
    "proj_docker": ["learning-docker", "hello-container", "notes"],
    "proj_tee": ["tee-101", "notes"],
    "proj_misc": ["notes", "dotfiles", "python-practice"],
    "docker_cmd": [
        "docker run hello-world",
        "docker ps",
        "docker build -t myapp .",
        "docker compose up",
        "docker images",
        "docker exec -it web sh",
        "docker logs web",
        "docker stop web",
    ],
    "docker_err": [
        "permission denied while trying to connect to the Docker daemon socket",
        "port is already allocated",
        "no such file or directory",
        "image not found",
        "exited with code 1",
    ],
    "tutorial": [
        "a YouTube tutorial",
        "the official Docker docs",
        "a blog post",
        "the Phala docs",
        "a free online course",
        "a Medium article",
        "the dstack README",
    ],
    "tee_q": [
        "what a TEE actually protects",
        "why we trust Intel at all",
        "what an enclave is",
        "what the difference between SGX and TDX is",
        "how attestation proves anything",
        "who checks the attestation",
        "what a confidential VM is",
    ],
    "py": [
        "list comprehensions",
        "virtualenv",
        "requests library",
        "json parsing",
        "pytest basics",
        "f-strings",
    ],
}

N_TOPICS: list[tuple[str, int, str, list[str]]] = [
    (
        "docker-basics",
        18,
        "proj_docker",
        [
            "Ran {docker_cmd} for the first time.",
            "Learned the difference between a docker image and a container.",
            "Got {docker_err} when running {docker_cmd}.",
            "Wrote my first Dockerfile for a small Python app.",
            "Docker volumes confuse me; the data disappeared after removing the container.",
            "Port mapping finally makes sense: host port first, container port second.",
            "Followed {tutorial} about docker compose.",
            "Docker compose starts two containers now, a web app and a database.",
            "Added my user to the docker group to fix the permission error.",
        ],
    ),
    (
        "what-is-a-tee",
        14,
        "proj_tee",
        [
            "Trying to understand {tee_q}.",
            "A trusted execution environment keeps data encrypted in memory, if I read it right.",
            "Read {tutorial} on confidential computing.",
            "Still not sure {tee_q}.",
            "TEE means trusted execution environment. Intel SGX and Intel TDX are examples.",
            "Drew a diagram of the enclave and the host for myself.",
            "Confidential computing protects data in use, not only at rest and in transit.",
        ],
    ),
    (
        "first-attestation",
        10,
        "proj_tee",
        [
            "First attempt at attestation: no idea what to do with the output.",
            "Tried to follow the attestation example in {tutorial} and got lost.",
            "Attestation seems to be a signed statement about the code running in the enclave.",
            "Asked in the forum how remote attestation works; got a helpful answer from {person}.",
            "My attestation request returned an error and I don't understand it yet.",
            "Watched a talk on remote attestation, understood maybe half.",
        ],
    ),
    (
        "linux-git",
        10,
        "proj_misc",
        [
            "Practised ssh keys and logging into a cloud server.",
            "Learned git rebase the hard way.",
            "Linux file permissions: chmod and chown make sense now.",
            "Set up a small VPS to play with.",
            "Wrote a bash script to back up my notes.",
        ],
    ),
    (
        "python",
        8,
        "proj_misc",
        [
            "Python practice: {py}.",
            "Wrote a small Python script that calls an API and prints JSON.",
            "Learned about {py} from {tutorial}.",
        ],
    ),
    (
        "tutorials",
        8,
        "proj_tee",
        [
            "Worked through {tutorial}.",
            "Bookmarked {tutorial} to read later.",
            "Took notes on {tutorial}; will revisit.",
        ],
    ),
    (
        "confusion",
        6,
        "proj_tee",
        [
            "Feeling lost with all the acronyms.",
            "Everything is new, but it is fun.",
            "Too many tabs open again.",
            "Need to go slower and build something small.",
        ],
    ),
]

N_FILLER = [
    "{mood}",
    "Will ask {person} tomorrow.",
    "Spent {dur} on this.",
    "Small steps.",
    "Took a break and came back.",
    "Writing this down so I remember it.",
]


@dataclass(frozen=True, slots=True)
class Owner:
    name: str
    n_records: int
    start: datetime
    days: int
    vocab: dict[str, Sequence[str]]
    topics: list[tuple[str, int, str, list[str]]]
    filler: list[str]
    sentences: tuple[int, ...]  # weights for 1..6 sentences


OWNERS = [
    Owner(
        "amiller",
        2000,
        datetime(2025, 9, 1, tzinfo=UTC),
        183,
        A,
        A_TOPICS,
        A_FILLER,
        (10, 30, 30, 16, 9, 5),
    ),
    Owner(
        "cloudmolty",
        1100,
        datetime(2025, 11, 3, tzinfo=UTC),
        120,
        C,
        C_TOPICS,
        C_FILLER,
        (12, 32, 30, 15, 8, 3),
    ),
    Owner(
        "newbiemolty",
        500,
        datetime(2026, 1, 12, tzinfo=UTC),
        75,
        N,
        N_TOPICS,
        N_FILLER,
        (25, 35, 25, 10, 4, 1),
    ),
]

_SLOT = re.compile(r"\{(\w+)\}")


PREFIXES = [
    "Today: ",
    "Finally: ",
    "Note to self: ",
    "After {dur}, ",
    "Again, ",
    "Quick note: ",
    "Turns out ",
    "Morning: ",
    "Late night: ",
    "FYI ",
    "Hmm, ",
    "Update: ",
]
SUFFIXES = [
    " Need to follow up.",
    " Took {dur}.",
    " Will check with {person}.",
    " Not sure yet why.",
    " Writing it down here.",
    " Should be in the docs.",
    " Happy with it.",
    " More tomorrow.",
]


def _fill(rng: random.Random, template: str, vocab: dict[str, Sequence[str]]) -> str:
    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        choices = vocab.get(key) or V.get(key)
        if not choices:
            raise KeyError(f"no vocabulary for slot {{{key}}} in {template!r}")
        return _fill(rng, rng.choice(choices), vocab)

    return _SLOT.sub(one, template)


def _sentence(rng: random.Random, template: str, vocab: dict[str, Sequence[str]]) -> str:
    """One sentence: a filled template, sometimes framed the way people write logs."""
    text = _fill(rng, template, vocab)
    r = rng.random()
    if r < 0.12:
        prefix = _fill(rng, rng.choice(PREFIXES), vocab)
        keep = text if text[:2].isupper() else text[0].lower() + text[1:]
        text = prefix + keep
    elif r < 0.2:
        text = text + _fill(rng, rng.choice(SUFFIXES), vocab)
    return text[0].upper() + text[1:]


def _noise(rng: random.Random, text: str) -> str:
    """Occasional real-log noise: lower-case start, missing full stop, an aside."""
    r = rng.random()
    if r < 0.05:
        text = text[0].lower() + text[1:]
    elif r < 0.09:
        text = text.rstrip(".")
    elif r < 0.11:
        text += " " + rng.choice(["(ugh)", "(finally)", "(again)", "(afk for a bit)", "lol"])
    return text


def _timestamps(rng: random.Random, owner: Owner) -> list[datetime]:
    active = [d for d in range(owner.days) if rng.random() < (0.85 if d % 7 < 5 else 0.3)]
    stamps = []
    for _ in range(owner.n_records):
        day = rng.choice(active)
        second = rng.randrange(8 * 3600, 23 * 3600)
        stamps.append(owner.start + timedelta(days=day, seconds=second))
    return sorted(stamps)


def generate(owner: Owner, seed: int = SEED) -> list[dict[str, object]]:
    rng = random.Random(f"{seed}:{owner.name}")  # noqa: S311 - reproducible data, not secrets
    weights = [t[1] for t in owner.topics]
    records: list[dict[str, object]] = []
    for ts in _timestamps(rng, owner):
        tag, _, proj_key, templates = rng.choices(owner.topics, weights=weights)[0]
        n = rng.choices(range(1, 7), weights=owner.sentences)[0]
        sentences: list[str] = []
        seen: set[str] = set()
        for i in range(n):
            r = rng.random()
            if i == 0 or r < 0.65:
                source = templates
            elif r < 0.85:
                source = rng.choices(owner.topics, weights=weights)[0][3]
            else:
                source = owner.filler
            sentence = _sentence(rng, rng.choice(source), owner.vocab)
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(_noise(rng, sentence))
        record: dict[str, object] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "project": rng.choice(owner.vocab[proj_key]),
            "text": " ".join(sentences),
        }
        if rng.random() < 0.4:
            record["tags"] = sorted(
                {tag, *rng.sample(["bug", "idea", "docs", "review"], k=rng.randrange(0, 2))}
            )
        records.append(record)
    return records


def render(records: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def build_all(seed: int = SEED) -> dict[str, bytes]:
    """File name -> content for every shipped dataset."""
    return {f"{o.name}.jsonl": render(generate(o, seed)) for o in OWNERS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in build_all().items():
        (args.out / name).write_bytes(content)
        lines = content.count(b"\n")
        print(f"{args.out / name}: {lines} records, {len(content)} bytes")


if __name__ == "__main__":
    main()
