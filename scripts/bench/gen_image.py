#!/usr/bin/env python3
"""Generate the multi-layer test image for scripts/bench/image.sh.

  gen_image.py OUTDIR NAME:TAG [TOTAL_MIB [LAYERS [BASE_TAR]]]

Builds LAYERS (default 5) gzip'd tar layers: BASE_TAR (a root filesystem tar, e.g. the
busybox test rootfs, so the image can run `true`) as the first layer when given, then
generated layers with about TOTAL_MIB (default 60) MiB of uncompressed file content in all, deterministic (seeded): each file is a mix of random
bytes (incompressible) and generated text (compresses well), so gzip leaves roughly
half of it. Writes

  OUTDIR/layout/            an OCI image layout (oci-layout, index.json, blobs/sha256/...)
                            whose index names the image NAME:TAG (io.containerd.image.name
                            and a tag-only org.opencontainers.image.ref.name)
  OUTDIR/image.tar          that layout plus a `docker save` manifest.json (RepoTags,
                            Config and Layers pointing into blobs/), i.e. the archive format
                            of `docker save` since Docker 25: both `docker load` and
                            `swarm image load` read it
  OUTDIR/summary.json       {"layers": [{"blob": PATH, "size": N, "diff_size": N}, ...],
                            "compressed_bytes": N, "uncompressed_bytes": N,
                            "content_bytes": N, "files": N}

The config's rootfs.diff_ids are the sha256 of the uncompressed layer tars; the manifest's
layer digests are the sha256 of the gzip blobs. Nothing is downloaded.
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

MTIME = 1_700_000_000
WORDS = (
    "container image layer registry manifest digest config overlay snapshot runtime "
    "namespace cgroup mount bundle rootfs process signal socket daemon swarm node task "
    "service network volume secret health restart update rollback scheduler raft"
).split()


def text_block(rng, size):
    out = io.StringIO()
    n = 0
    line = 0
    while n < size:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        s = f"{line:08d} {words} {rng.getrandbits(48):012x}\n"
        out.write(s)
        n += len(s)
        line += 1
    return out.getvalue().encode()[:size]


def file_content(rng, text, size):
    """About half random bytes, half slices of the text block, in 4-64 KiB runs."""
    parts = []
    left = size
    while left > 0:
        run = min(left, rng.randint(4096, 65536))
        if rng.random() < 0.5:
            parts.append(rng.randbytes(run))
        else:
            off = rng.randrange(0, len(text) - run) if len(text) > run else 0
            parts.append(text[off : off + run])
        left -= run
    return b"".join(parts)


def add_dir(tar, name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = MTIME
    tar.addfile(ti)


def add_file(tar, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = MTIME
    tar.addfile(ti, io.BytesIO(data))


def build_layer(rng, text, index, target):
    """One layer tar (bytes) with about `target` bytes of file content."""
    buf = io.BytesIO()
    files = 0
    content = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_dir(tar, "opt")
        add_dir(tar, f"opt/layer{index}")
        sub = 0
        while content < target:
            if files % 16 == 0:
                sub += 1
                add_dir(tar, f"opt/layer{index}/d{sub:02d}")
            # Mostly small and medium files, a few large ones.
            r = rng.random()
            if r < 0.6:
                size = rng.randint(1024, 64 * 1024)
            elif r < 0.9:
                size = rng.randint(64 * 1024, 512 * 1024)
            else:
                size = rng.randint(1024 * 1024, 3 * 1024 * 1024)
            size = min(size, max(1024, target - content))
            add_file(tar, f"opt/layer{index}/d{sub:02d}/f{files:04d}.dat", file_content(rng, text, size))
            files += 1
            content += size
        ti = tarfile.TarInfo(f"opt/layer{index}/latest")
        ti.type = tarfile.SYMTYPE
        ti.linkname = f"d{sub:02d}"
        ti.mtime = MTIME
        tar.addfile(ti)
        add_file(tar, f"etc/layer{index}.conf", f"layer={index}\nfiles={files}\n".encode())
    return buf.getvalue(), files, content


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return digest, path


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, name = sys.argv[1], sys.argv[2]
    total_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    nlayers = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    base = sys.argv[5] if len(sys.argv) > 5 else ""
    if not (1 <= total_mib <= 4096 and 1 <= nlayers <= 64):
        sys.exit("TOTAL_MIB must be 1..4096 and LAYERS 1..64")
    repo, _, tag = name.rpartition(":")
    if not repo or "/" in tag:
        sys.exit("NAME:TAG needs a tag")
    rng = random.Random(20261123)
    text = text_block(rng, 1024 * 1024)
    layout = os.path.join(out, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)

    generated = nlayers - 1 if base else nlayers
    if generated < 1:
        sys.exit("LAYERS must be >= 2 with a BASE_TAR")
    per_layer = total_mib * 1024 * 1024 // generated
    layers = []
    diff_ids = []
    summary = {"layers": [], "compressed_bytes": 0, "uncompressed_bytes": 0, "content_bytes": 0, "files": 0}
    for i in range(1, nlayers + 1):
        if base and i == 1:
            with open(base, "rb") as f:
                raw = f.read()
            with tarfile.open(fileobj=io.BytesIO(raw)) as t:
                members = t.getmembers()
            files = sum(1 for m in members if m.isfile())
            content = sum(m.size for m in members if m.isfile())
        else:
            raw, files, content = build_layer(rng, text, i, per_layer)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        digest, path = blob(layout, gz)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": "sha256:" + digest, "size": len(gz)})
        summary["layers"].append({"blob": os.path.abspath(path), "size": len(gz), "diff_size": len(raw)})
        summary["compressed_bytes"] += len(gz)
        summary["uncompressed_bytes"] += len(raw)
        summary["content_bytes"] += content
        summary["files"] += files
        del raw, gz

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"bench layer {i + 1}"}
                    for i in range(nlayers)],
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest, _ = blob(layout, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + config_digest, "size": len(config_bytes)},
        "layers": layers,
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    manifest_digest, _ = blob(layout, manifest_bytes)
    full = name if "/" in repo else f"docker.io/library/{name}"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + manifest_digest,
            "size": len(manifest_bytes),
            "annotations": {"io.containerd.image.name": full,
                            "org.opencontainers.image.ref.name": tag},
        }],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    docker_manifest = [{
        "Config": f"blobs/sha256/{config_digest}",
        "RepoTags": [name],
        "Layers": [f"blobs/sha256/{layer['digest'][7:]}" for layer in layers],
    }]

    with tarfile.open(os.path.join(out, "image.tar"), "w", format=tarfile.PAX_FORMAT) as tar:
        for top in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout, top), arcname=top)
        add_file(tar, "manifest.json", json.dumps(docker_manifest).encode())
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
