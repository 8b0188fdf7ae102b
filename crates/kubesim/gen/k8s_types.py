#!/usr/bin/env python3
"""Generates crates/kubesim/src/wire/k8s-types.json: the protobuf layout and
JSON field names of every Kubernetes API message.

Sources (both maintained crates from crates.io, read from Cargo's registry):
- k8s-pb (kube-rs org): prost code generated from upstream `generated.proto`,
  giving each message's field tags and wire types, plus the upstream doc
  markers (+optional, +listType, +listMapKey, +patchMergeKey, +patchStrategy).
- k8s-openapi: the JSON name of each field (its serde field table).

Usage: python3 crates/kubesim/gen/k8s_types.py [K8S_PB_SRC] [K8S_OPENAPI_SRC]
"""
import glob, json, os, re, sys

def registry_dir(prefix):
    hits = sorted(glob.glob(os.path.expanduser(f"~/.cargo/registry/src/*/{prefix}")))
    if not hits:
        sys.exit(f"{prefix} not in ~/.cargo/registry/src (run `cargo fetch` in a crate that depends on it)")
    return hits[-1]

PB = sys.argv[1] if len(sys.argv) > 1 else registry_dir("k8s-pb-0.9.0")
OA = sys.argv[2] if len(sys.argv) > 2 else registry_dir("k8s-openapi-0.29.0")
OA_VERSION = "v1_37"

def norm(s):
    return s.replace("_", "").lower()

# --- k8s-openapi: (module, struct) -> {normalized rust field -> json name}
json_names = {}
required = {}
oa_root = os.path.join(OA, "src", OA_VERSION)
for path in glob.glob(os.path.join(oa_root, "**", "*.rs"), recursive=True):
    rel = os.path.relpath(os.path.dirname(path), oa_root).replace(os.sep, ".")
    text = open(path).read()
    for m in re.finditer(r"^pub struct (\w+)", text, re.M):
        pairs = re.findall(r'"([^"]+)" => Field::Key_(\w+)', text)
        table = {norm(r.rstrip("_")): j for j, r in pairs}
        table.update({norm(r[: -len("_path")]): j for j, r in pairs if j.startswith("$")})
        # prost renames `JSONSchemaProps` to `JsonSchemaProps`: match case-insensitively.
        json_names[(rel, m.group(1).lower())] = (m.group(1), table)
        req = re.search(r'"required": \[(.*?)\]', text, re.S)
        if req:
            required[(rel, m.group(1).lower())] = re.findall(r'"([^"]+)"', req.group(1))

def camel(rust):
    parts = rust.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])

WRAPPERS = ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<")

def resolve(module, ty):
    ty = ty.strip().rstrip(",").strip()
    changed = True
    while changed:
        changed = False
        for w in WRAPPERS:
            if ty.startswith(w):
                ty = ty[len(w):-1].strip().rstrip(",").strip()
                changed = True
    if "BTreeMap<" in ty:
        inner = ty[ty.index("<") + 1:-1]
        ty = inner.split(",", 1)[1].strip()
        return resolve(module, ty)
    segs = ty.split("::")
    mod = module.split(".")
    while segs and segs[0] == "super":
        segs.pop(0)
        mod.pop()
    if segs and segs[0] == "crate":
        segs.pop(0)
        mod = []
    return ".".join(mod + segs)

def describe(docs):
    """The doc comment as kube-openapi renders it: markers dropped."""
    text = []
    for d in docs:
        if d.startswith("+") or d.startswith("TODO"):
            continue
        text.append(d)
    return "\n".join(text).strip().replace("\n\n", "\0").replace("\n", " ").replace("\0", "\n\n")


messages = {}
kinds = {}
pb_root = os.path.join(PB, "src")
for path in glob.glob(os.path.join(pb_root, "**", "mod.rs"), recursive=True):
    module = os.path.relpath(os.path.dirname(path), pb_root).replace(os.sep, ".")
    lines = open(path).read().split("\n")
    i, docs, attr, cur = 0, [], None, None
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line.startswith("///"):
            docs.append(line[3:].strip())
            continue
        m = re.match(r"pub struct (\w+) \{", line)
        if m:
            cur = {"name": m.group(1), "fields": []}
            d = describe(docs)
            if d:
                cur["description"] = d
            messages[f"{module}.{m.group(1)}"] = cur
            docs = []
            continue
        if cur is not None and line == "}":
            cur, docs = None, []
            continue
        if line.startswith("#[prost("):
            attr = line[len("#[prost("):-2]
            continue
        if attr is not None and line.startswith("pub "):
            decl = line
            while not decl.endswith(",") or decl.count("<") != decl.count(">"):
                decl += " " + lines[i].strip()
                i += 1
            fname, ty = decl[4:-1].split(":", 1)
            rust = fname.replace("r#", "")
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            kind = attr.split(",")[0].strip()
            f = {"tag": tag, "rust": rust}
            if kind.startswith("btree_map"):
                k, v = re.search(r'btree_map = "(\w+), (\w+)"', attr).groups()
                f["map"] = True
                f["kind"] = v
            else:
                f["kind"] = "bytes" if kind.startswith("bytes") else kind
                if ", repeated" in attr:
                    f["repeated"] = True
            if f["kind"] == "message":
                f["type"] = resolve(module, ty)
            markers = {}
            for d in docs:
                mm = re.match(r"\+(optional|listType|listMapKey|patchMergeKey|patchStrategy|mapType|structType)(?:=(.*))?$", d)
                if mm:
                    key, val = mm.group(1), mm.group(2)
                    if key == "listMapKey":
                        markers.setdefault("listMapKeys", []).append(val)
                    else:
                        markers[key] = True if val is None else val
            f.update(markers)
            d = describe(docs)
            if d:
                f["description"] = d
            cur["fields"].append(f)
            attr, docs = None, []
            continue
        if not line.startswith("#["):
            docs = []
        m = re.match(r"impl crate::Resource for (\w+) \{", line)
        if m:
            block = " ".join(lines[i:i + 6])
            av = re.search(r'API_VERSION: &\'static str = "([^"]*)"', block).group(1)
            kd = re.search(r'KIND: &\'static str = "([^"]*)"', block).group(1)
            kinds[f"{av}/{kd}"] = f"{module}.{m.group(1)}"

# JSON names: k8s-openapi's serde names where it has the type, else camelCase.
unmatched = 0
for full, msg in messages.items():
    module, name = full.rsplit(".", 1)
    go_name, table = json_names.get((module, name.lower()), (name, {}))
    if go_name != name:
        msg["goName"] = go_name
    if (module, name.lower()) in required:
        msg["required"] = required[(module, name.lower())]
    for f in msg["fields"]:
        j = table.get(norm(f["rust"]))
        embedded = messages.get(f.get("type", ""), {}).get("fields", [])
        if j is None and table and embedded and all(
                norm(e.get("json", e.get("rust", ""))) in table for e in embedded):
            # A Go struct embedded with `json:",inline"`: its fields sit in the parent.
            f["inline"] = True
            j = ""
        if j is None:
            j = camel(f["rust"])
            if table:
                unmatched += 1
                print(f"  {full}.{f['rust']} -> {j}", file=sys.stderr)
        f["json"] = j
        del f["rust"]
    del msg["name"]

out = os.path.join(os.path.dirname(__file__), "..", "src", "wire", "k8s-types.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    json.dump({"source": "k8s-pb 0.9.0 + k8s-openapi 0.29.0 (" + OA_VERSION + ")",
               "kinds": dict(sorted(kinds.items())),
               "messages": dict(sorted(messages.items()))}, fh, separators=(",", ":"), sort_keys=True)
    fh.write("\n")
print(f"{len(messages)} messages, {len(kinds)} kinds, {unmatched} fields without a k8s-openapi name", file=sys.stderr)
