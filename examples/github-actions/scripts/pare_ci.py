#!/usr/bin/env python3
"""The steps of pare's GitHub Actions workflow, as one small program.

The workflow (workflows/pare.yml) calls these subcommands; the logic lives
here and in pare, so it can be run and tested outside GitHub:

  install                      the pare release named by PARE_VERSION, its
                               archive checked against the committed SHA256SUMS
  changed BASE                 plan files (plans/**.yaml) changed since BASE
  annotate PLAN...             `pare validate`, its errors as GitHub annotations
  pr --out DIR PLAN...         plan each file: a saved plan, a comment body and
                               the job summary; posts one comment per plan,
                               updated in place, when GITHUB_TOKEN is set
  comment --plan P --body F    creates or updates the comment for plan P
  find-pr                      (merge) the pull request merged into GITHUB_SHA,
                               its newest successful plan run, its approvers
  matrix DIR                   (merge) the saved plans in DIR, one job each
  apply --saved FILE           (merge) applies a saved plan; posts the result
  rollback --config F --run ID undoes a run

Only the standard library: the runner's python3 is enough. pare itself is
`$PARE`, else `pare` on PATH. Settings for a plan come from the nearest
pare.toml at or above its folder, inside the repository (each account's
folder has one, naming its own state prefix).
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# GitHub refuses a comment over 65,536 characters; pare's markdown preview
# stays under 60,000 bytes, leaving room for the marker and footer here.
COMMENT_LIMIT = 65_536
# A job summary may hold 1 MiB per step.
SUMMARY_LIMIT = 1_000_000
ARTIFACT_INDEX = "index.json"
# Plan files the workflow handles: under plans/, names of letters, digits,
# `.`, `_`, `-` and `/` only (so a path is one word in the workflow's shell).
PLAN_GLOB = re.compile(r"plans/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*\.ya?ml")


def fail(message, code=1):
    print(f"pare-ci: {message}", file=sys.stderr)
    sys.exit(code)


def pare(args, cwd=None, env=None):
    """Runs pare; returns (exit code, stdout, stderr), stderr also shown."""
    exe = os.environ.get("PARE", "pare")
    try:
        p = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        fail(f"`{exe}` not found: install pare (see the workflow's install step) or set PARE")
    sys.stderr.write(p.stderr)
    return p.returncode, p.stdout, p.stderr


def repo_root():
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if out.returncode != 0:
        fail("not in a git repository: run from the repository's checkout")
    return Path(out.stdout.strip()).resolve()


def plan_path(arg):
    """A plan file named by the workflow: relative to the repository root,
    under plans/, an existing file inside the checkout (never a link out)."""
    root = repo_root()
    p = Path(arg)
    if p.is_absolute() or ".." in p.parts or not PLAN_GLOB.fullmatch(p.as_posix()):
        fail(f"{arg!r} is not a plan file under plans/ (a relative path ending .yaml)")
    full = (root / p).resolve()
    if not full.is_relative_to(root / "plans") or not full.is_file():
        fail(f"{arg!r} is not a file under plans/ in this checkout (a link out of plans/ is refused)")
    return p.as_posix()


def config_for(plan):
    """The nearest pare.toml at or above the plan's folder, below the root."""
    root = repo_root()
    folder = (root / plan).parent
    while True:
        candidate = folder / "pare.toml"
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
        if folder == root:
            fail(f"no pare.toml for {plan}: put one in its folder (or above it) naming its [state]")
        folder = folder.parent


def state_of(config):
    """`s3://bucket/prefix` from a pare.toml, for the apply job's concurrency
    group; the config's path when it names no S3 state."""
    try:
        import tomllib

        with open(repo_root() / config, "rb") as f:
            state = tomllib.load(f).get("state", {})
        if state.get("backend") == "s3":
            return f"s3://{state.get('bucket', '')}/{state.get('prefix', '')}"
    except (ImportError, OSError, ValueError):
        pass
    return config


def slug(plan):
    """A file name for the plan's saved plan: readable, and distinct for
    distinct plans (`plans/a_b.yaml` and `plans/a/b.yaml` too)."""
    digest = hashlib.sha256(plan.encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', Path(plan).stem)[:60]}-{digest}"


def marker(kind, plan):
    """The hidden first line of a plan's comment: one-to-one with the plan
    (the hash of its path; the path is shown for people, with `--`, which
    would end an HTML comment, made `-`)."""
    digest = hashlib.sha256(plan.encode()).hexdigest()[:24]
    return f"<!-- pare-{kind}: {digest} {plan.replace('--', '-')} -->"


def write_output(**values):
    """Step outputs, for later jobs (`$GITHUB_OUTPUT`)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        for k, v in values.items():
            print(f"{k}={v}")
        return
    with open(path, "a", encoding="utf-8") as f:
        for k, v in values.items():
            if "\n" in str(v):
                fail(f"output {k} holds a newline")
            f.write(f"{k}={v}\n")


def summary(text):
    """Appends to the job summary (`$GITHUB_STEP_SUMMARY`), cut to its limit."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        used = os.path.getsize(path)
    except OSError:
        used = 0
    room = SUMMARY_LIMIT - used
    data = text.encode()
    if len(data) > room:
        note = "\n\n… cut here: the job summary holds 1 MiB.\n".encode()
        data = data[: max(0, room - len(note))].decode(errors="ignore").encode() + note
    with open(path, "ab") as f:
        f.write(data)


# ---------------------------------------------------------------- GitHub API


class GitHub:
    """The few REST endpoints the workflow uses, with GITHUB_TOKEN."""

    def __init__(self):
        self.token = os.environ.get("GITHUB_TOKEN")
        self.api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        self.repo = os.environ.get("GITHUB_REPOSITORY", "")
        if not self.token:
            fail("GITHUB_TOKEN is not set: pass it to the step (`env: GITHUB_TOKEN: ${{ github.token }}`)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", self.repo):
            fail(f"GITHUB_REPOSITORY {self.repo!r} is not owner/name")

    def call(self, method, path, body=None):
        url = path if path.startswith("http") else f"{self.api}/repos/{self.repo}{path}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(4):
            req = urllib.request.Request(url, data=data, method=method)
            req.add_header("Authorization", f"Bearer {self.token}")
            req.add_header("Accept", "application/vnd.github+json")
            req.add_header("X-GitHub-Api-Version", "2022-11-28")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    text = r.read().decode()
                    return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:300]
                # 5xx and secondary rate limits are worth another try.
                if (e.code >= 500 or e.code == 429) and attempt < 3:
                    time.sleep(2**attempt)
                    continue
                fail(f"GitHub answered {e.code} to {method} {url}: {detail}")
            except (urllib.error.URLError, TimeoutError) as e:
                if attempt < 3:
                    time.sleep(2**attempt)
                    continue
                fail(f"GitHub did not answer {method} {url}: {e}")
        return None

    def pages(self, path):
        sep = "&" if "?" in path else "?"
        page = 1
        while True:
            items = self.call("GET", f"{path}{sep}per_page=100&page={page}") or []
            yield from items
            if len(items) < 100:
                return
            page += 1


def pr_number():
    """The pull request: `PARE_PULL_REQUEST`, else the event's."""
    n = os.environ.get("PARE_PULL_REQUEST", "").strip()
    if not n:
        event = os.environ.get("GITHUB_EVENT_PATH")
        if event and os.path.isfile(event):
            with open(event, encoding="utf-8") as f:
                n = str((json.load(f).get("pull_request") or {}).get("number", ""))
    if not re.fullmatch(r"[0-9]{1,10}", n):
        fail("no pull request number: set PARE_PULL_REQUEST or run on a pull_request event")
    return int(n)


def upsert(gh, number, mark, body, keep=None):
    """Updates the comment that starts with `mark` (written by the workflow's
    bot), or creates it: one comment per plan, however many pushes. A
    comment for which `keep(body)` is true is left as it is."""
    author = os.environ.get("PARE_COMMENT_AUTHOR", "github-actions[bot]")
    text = f"{mark}\n{body}"
    # Counted in bytes: at least as many as any count GitHub makes.
    if len(text.encode()) > COMMENT_LIMIT:
        fail(f"the comment is {len(text.encode())} bytes, over GitHub's {COMMENT_LIMIT}")
    mine = [
        c
        for c in gh.pages(f"/issues/{number}/comments")
        if (c.get("body") or "").startswith(mark + "\n")
        and (c.get("user") or {}).get("login") == author
    ]
    if mine:
        if keep and any(keep(c.get("body") or "") for c in mine):
            return "kept", mine[0]["id"]
        # Two runs that raced may both have created one: keep them all current.
        for c in mine:
            gh.call("PATCH", f"/issues/comments/{c['id']}", {"body": text})
        return "updated", mine[0]["id"]
    made = gh.call("POST", f"/issues/{number}/comments", {"body": text})
    return "created", (made or {}).get("id")


# ---------------------------------------------------------------- commands


def cmd_install(args):
    """Downloads the release archive for this runner, checks its SHA-256
    against the committed checksums file, and puts `pare` on the PATH."""
    import platform
    import tarfile

    version = os.environ.get("PARE_VERSION", "")
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version):
        fail(f"PARE_VERSION {version!r} is not a release version like 0.1.0")
    machine = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine())
    system = {"Linux": "unknown-linux-gnu", "Darwin": "apple-darwin"}.get(platform.system())
    if not machine or not system:
        fail(f"no pare release for {platform.system()} {platform.machine()}: build it with `cargo install --locked`")
    name = f"pare-{version}-{machine}-{system}"
    sums = Path(args.sums)
    want = None
    try:
        for line in sums.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == f"{name}.tar.gz":
                want = parts[0].lower()
    except OSError as e:
        fail(f"{sums} cannot be read ({e}): commit the release's SHA256SUMS there")
    if not want or not re.fullmatch(r"[0-9a-f]{64}", want):
        fail(f"{sums} has no SHA-256 for {name}.tar.gz: copy SHA256SUMS from release v{version}")
    url = f"{args.base.rstrip('/')}/v{version}/{name}.tar.gz"
    with urllib.request.urlopen(url, timeout=120) as r:
        data = r.read()
    have = hashlib.sha256(data).hexdigest()
    if have != want:
        fail(f"{name}.tar.gz has SHA-256 {have}, not {want} as {sums} says: not installing it")
    dest = Path(os.environ.get("RUNNER_TEMP", "/tmp")) / name
    dest.mkdir(parents=True, exist_ok=True)
    import io

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.getmember(f"{name}/pare")
        if not member.isfile():
            fail(f"{name}.tar.gz holds no pare binary")
        (dest / "pare").write_bytes(tar.extractfile(member).read())
    (dest / "pare").chmod(0o755)
    path = os.environ.get("GITHUB_PATH")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{dest}\n")
    print(f"installed pare {version} ({name}, sha256 {have[:12]}) in {dest}")



def cmd_changed(args):
    root = repo_root()
    out = subprocess.run(
        ["git", "diff", "--name-only", "--diff-filter=ACMR", f"{args.base}...HEAD", "--", "plans/"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        fail(f"git diff against {args.base} failed (fetch the base: `fetch-depth: 0`): {out.stderr.strip()}")
    # YAML under plans/ that is a plan (a sandbox's seed account is not);
    # links and anything but a regular file are not read.
    plans = []
    for p in out.stdout.split("\n"):
        path = root / p
        if not PLAN_GLOB.fullmatch(p) or path.is_symlink() or not path.is_file():
            if p and PLAN_GLOB.fullmatch(p):
                print(f"pare-ci: {p} is not a regular file: not planned", file=sys.stderr)
            continue
        with open(path, "rb") as f:
            head = f.read(1 << 20).decode(errors="replace")
        if re.search(r"^[\"']?recommendations[\"']?\s*:", head, re.M):
            plans.append(p)
    write_output(plans=" ".join(plans))
    print("\n".join(plans))


def cmd_annotate(args):
    plans = [plan_path(p) for p in args.plans]
    if not plans:
        return
    code, out, _ = pare(["validate", "--format", "json", *plans], cwd=repo_root())
    try:
        report = json.loads(out)
    except ValueError:
        fail(f"pare validate gave no report (exit {code})")
    for f in report.get("files", []):
        for d in f.get("diagnostics", []):
            level = "error" if d.get("severity") == "error" else "warning"
            # Annotation properties end at `,` and `::`; the message at a newline.
            prop = lambda v: re.sub(r"[,:\r\n%]", "_", str(v))
            msg = f"{d.get('code', '')}: {d.get('message', '')}. {d.get('help', '')}"
            msg = msg.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            print(f"::{level} file={prop(d.get('file', ''))},line={int(d.get('line', 1))},col={int(d.get('column', 1))}::{msg}")
    sys.exit(0 if report.get("valid") else 1)


def cmd_pr(args):
    root = repo_root()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plans = [plan_path(p) for p in args.plans]
    gh = GitHub() if os.environ.get("GITHUB_TOKEN") else None
    index, worst = [], 0
    for plan in plans:
        config = config_for(plan)
        saved = out / f"{slug(plan)}.saved.json"
        # The full preview for the job summary, then the saved plan and the
        # comment (the markdown names the saved plan's lineage).
        code, full, _ = pare(["plan", plan, "--config", config, "--color", "never"], cwd=root)
        if code not in (0, 2):
            summary(f"## `{plan}`: pare plan failed (exit {code})\n\nSee the job log.\n\n")
            worst = max(worst, 1)
            continue
        code, body, _ = pare(
            ["plan", plan, "--config", config, "--format", "markdown", "--out", str(saved)], cwd=root
        )
        if code not in (0, 2):
            summary(f"## `{plan}`: pare plan failed (exit {code})\n\nSee the job log.\n\n")
            worst = max(worst, 1)
            continue
        (out / f"{slug(plan)}.md").write_text(body, encoding="utf-8")
        fence = "`" * max(4, 1 + max((len(m) for m in re.findall(r"`+", full)), default=0))
        summary(f"{body}\n<details><summary>Full preview of <code>{plan}</code></summary>\n\n{fence}text\n{full}{fence}\n\n</details>\n\n")
        lineage = json.loads(saved.read_text(encoding="utf-8"))["lineage"]
        index.append({"plan": plan, "saved": saved.name, "lineage": lineage})
        if gh:
            what, cid = upsert(gh, pr_number(), marker("plan", plan), body)
            print(f"{what} comment {cid} for {plan}")
    (out / ARTIFACT_INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    sys.exit(worst)


def cmd_comment(args):
    plan = args.plan if PLAN_GLOB.fullmatch(args.plan) else fail(f"{args.plan!r} is not a plan under plans/")
    if not re.fullmatch(r"plan|apply-[0-9a-f]{16}", args.kind):
        fail(f"--kind {args.kind!r} is not `plan` or `apply-LINEAGE`")
    body = Path(args.body).read_text(encoding="utf-8")
    what, cid = upsert(GitHub(), pr_number(), marker(args.kind, plan), body)
    print(f"{what} comment {cid}")


def cmd_find_pr(args):
    gh = GitHub()
    sha = os.environ.get("GITHUB_SHA", "")
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        fail("GITHUB_SHA is not a commit id")
    pulls = [p for p in gh.call("GET", f"/commits/{sha}/pulls") or [] if p.get("merge_commit_sha") == sha]
    if not pulls:
        write_output(pr="", run_id="", approved_by="")
        print(f"no pull request was merged as {sha}: nothing to apply")
        return
    pr = pulls[0]
    head = pr["head"]["sha"]
    workflow = os.environ.get("PARE_WORKFLOW_FILE", "pare.yml")
    runs = gh.call(
        "GET",
        f"/actions/workflows/{workflow}/runs?event=pull_request&status=success&head_sha={head}&per_page=20",
    ) or {}
    runs = sorted(runs.get("workflow_runs", []), key=lambda r: r.get("run_number", 0), reverse=True)
    if not runs:
        fail(f"pull request #{pr['number']} has no successful plan run for its last commit {head[:12]}: nothing reviewed to apply")
    # The newest review of each reviewer counts; those that approve.
    latest = {}
    for r in gh.pages(f"/pulls/{pr['number']}/reviews"):
        login = (r.get("user") or {}).get("login")
        if login and r.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = r["state"]
    approvers = sorted(u for u, s in latest.items() if s == "APPROVED")
    write_output(pr=pr["number"], run_id=runs[0]["id"], approved_by=",".join(approvers))
    print(f"pull request #{pr['number']}, plan run {runs[0]['id']}, approved by {', '.join(approvers) or 'nobody'}")


def cmd_matrix(args):
    folder = Path(args.dir)
    try:
        index = json.loads((folder / ARTIFACT_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"{folder / ARTIFACT_INDEX} cannot be read: {e}")
    if not isinstance(index, list) or not all(isinstance(i, dict) for i in index):
        fail(f"{folder / ARTIFACT_INDEX} is not a list of saved plans")
    changed = None
    if args.since:
        out = subprocess.run(
            ["git", "diff", "--name-only", args.since, "HEAD", "--", "plans/"],
            cwd=repo_root(), capture_output=True, text=True,
        )
        if out.returncode != 0:
            fail(f"git diff {args.since} HEAD failed (check out with `fetch-depth: 2`): {out.stderr.strip()}")
        changed = set(out.stdout.split("\n"))
    include, seen = [], set()
    for item in index:
        # The artifact came from the pull request's run: each saved plan must
        # be for the plan the index names, which the merge changed, once.
        plan = plan_path(str(item.get("plan", "")))
        saved = str(item.get("saved", ""))
        if saved != f"{slug(plan)}.saved.json" or not (folder / saved).is_file():
            fail(f"the artifact's index names {saved!r} for {plan}, which is not its saved plan")
        try:
            data = json.loads((folder / saved).read_text(encoding="utf-8"))
            inner_plan, inner_lineage = data["plan"]["path"], data["lineage"]
        except (OSError, ValueError, KeyError, TypeError):
            fail(f"{saved} is not a saved plan")
        if inner_plan != plan or inner_lineage != item.get("lineage"):
            fail(f"{saved} is the saved plan of {inner_plan!r} (lineage {inner_lineage!r}), not of {plan} as the index says: the artifact was altered")
        if plan in seen:
            fail(f"the artifact names {plan} twice")
        seen.add(plan)
        if changed is not None and plan not in changed:
            fail(f"{plan} was not changed by this merge: its saved plan is not applied")
        config = config_for(plan)
        include.append({"plan": plan, "saved": saved, "config": config, "state": state_of(config)})
    write_output(matrix=json.dumps({"include": include}), count=len(include))


def cmd_apply(args):
    root = repo_root()
    saved = Path(args.saved).resolve()
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
        plan, lineage = str(data["plan"]["path"]), str(data["lineage"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{args.saved} is not a saved plan: {e}")
    plan = plan_path(plan)
    if args.plan is not None and plan != args.plan:
        fail(f"{args.saved} is the saved plan of {plan}, not of {args.plan}: not applied")
    if not re.fullmatch(r"[0-9a-f]{16}", lineage):
        fail(f"{args.saved} has no lineage pare writes")
    config = config_for(plan)

    def runs():
        code, hist, _ = pare(["history", "--format", "json", "--config", config], cwd=root)
        return json.loads(hist) if code == 0 else []

    # The run this apply makes is the one that was not there before it.
    before = {r.get("id") for r in runs()}
    code, _, err = pare(["apply", str(saved), "--config", config, "--auto-approve", "--color", "never"], cwd=root)
    new = [r for r in runs() if r.get("id") not in before and r.get("lineage") == lineage]
    run = new[0] if new else None
    body = result_comment(plan, config, code, err, run)
    summary(body + "\n")
    Path(args.result).write_text(body, encoding="utf-8")
    if os.environ.get("GITHUB_TOKEN") and os.environ.get("PARE_PULL_REQUEST"):
        # A re-run that applied nothing never hides the run that did.
        keep = (lambda old: "\nRun `" in old) if run is None else None
        what, cid = upsert(GitHub(), pr_number(), marker(f"apply-{lineage}", plan), body, keep)
        print(f"{what} comment {cid}")
    if run:
        write_output(run_id=run["id"])
    sys.exit(code)


def result_comment(plan, config, code, err, run):
    """What the merge did, for the pull request: the run, what changed, the
    realised savings, and how to undo it."""
    lines = [f"### pare apply: `{plan}`\n"]
    if run is None:
        # Refused before any change: pare's own words say what to do.
        reason = "\n".join(l for l in err.splitlines() if l.strip())[-3000:]
        fence = "`" * max(4, 1 + max((len(m) for m in re.findall(r"`+", reason)), default=0))
        lines.append(f"**Not applied** (exit {code}): nothing was changed.\n\n{fence}text\n{reason}\n{fence}\n")
        return "\n".join(lines)
    rid = run["id"]
    money = lambda x: f"${x:,.2f}"
    lines.append(
        f"Run `{rid}`: **{run['status']}** · {len(run.get('completed', []))} completed, "
        f"{len(run.get('failed', []))} failed, {len(run.get('skipped', []))} skipped · "
        f"saves **{money(run.get('savings_monthly_usd', 0))}/month** (planned {money(run.get('savings_planned_monthly_usd', 0))})\n"
    )
    for key, word in (("completed", "changed"), ("failed", "failed"), ("skipped", "skipped")):
        ids = run.get(key, [])
        if ids:
            shown = ", ".join(f"`{i}`" for i in ids[:40])
            more = f" and {len(ids) - 40} more" if len(ids) > 40 else ""
            lines.append(f"- {word}: {shown}{more}")
    lines.append(
        f"\nTo undo it: run the workflow's **rollback** with run `{rid}` and config `{config}`, "
        f"or `pare rollback --run {rid} --config {config}`.\n"
    )
    return "\n".join(lines)


def cmd_rollback(args):
    root = repo_root()
    if not re.fullmatch(r"r[0-9]{8}-[0-9]{6}(-[0-9]+)?", args.run):
        fail(f"{args.run!r} is not a run id (r20261202-140311, from `pare history`)")
    config = args.config
    ok = re.fullmatch(r"plans/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*pare\.toml", config)
    if not ok or not (root / config).resolve().is_relative_to(root / "plans") or not (root / config).is_file():
        fail(f"{config!r} is not a pare.toml under plans/")
    code, out, _ = pare(["rollback", "--run", args.run, "--config", config, "--auto-approve", "--color", "never"], cwd=root)
    sys.stdout.write(out)
    summary(f"### pare rollback `{args.run}` ({config}): exit {code}\n\n")
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(prog="pare_ci.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install")
    p.add_argument("--sums", default=".github/pare/SHA256SUMS")
    p.add_argument("--base", default=os.environ.get("PARE_RELEASES", ""))
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("changed")
    p.add_argument("base")
    p.set_defaults(func=cmd_changed)
    p = sub.add_parser("annotate")
    p.add_argument("plans", nargs="*")
    p.set_defaults(func=cmd_annotate)
    p = sub.add_parser("pr")
    p.add_argument("--out", required=True)
    p.add_argument("plans", nargs="*")
    p.set_defaults(func=cmd_pr)
    p = sub.add_parser("comment")
    p.add_argument("--plan", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--kind", default="plan")
    p.set_defaults(func=cmd_comment)
    p = sub.add_parser("find-pr")
    p.set_defaults(func=cmd_find_pr)
    p = sub.add_parser("matrix")
    p.add_argument("dir")
    p.add_argument("--since", help="only plans changed between this commit and HEAD (the merge's parent)")
    p.set_defaults(func=cmd_matrix)
    p = sub.add_parser("apply")
    p.add_argument("--saved", required=True)
    p.add_argument("--plan", help="the plan the saved plan must be for (the matrix's)")
    p.add_argument("--result", default="pare-apply-result.md")
    p.set_defaults(func=cmd_apply)
    p = sub.add_parser("rollback")
    p.add_argument("--config", required=True)
    p.add_argument("--run", required=True)
    p.set_defaults(func=cmd_rollback)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
