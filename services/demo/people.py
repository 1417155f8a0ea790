"""A demo directory for `make up`: a small sales organisation with a manager chain, two
sales teams and a default team queue; every person gets a random API token (only its hash is
in the YAML)."""

import secrets
from pathlib import Path

import yaml

from services.notifier.core.directory import hash_token

PEOPLE = (
    # id, name, role, manager, language
    ("zhang.wei", "张伟", "admin", None, "zh"),
    ("li.na", "李娜", "sales_director", "zhang.wei", "zh"),
    ("wang.fang", "王芳", "sales_manager", "li.na", "zh"),
    ("chen.jie", "Chen Jie", "sales_manager", "li.na", "en"),
    ("liu.yang", "刘洋", "account_owner", "wang.fang", "zh"),
    ("zhao.lei", "赵磊", "account_owner", "wang.fang", "zh"),
    ("sun.li", "Sun Li", "account_owner", "chen.jie", "en"),
    ("zhou.min", "周敏", "account_owner", "chen.jie", "zh"),
)


OWNERS = tuple(p[0] for p in PEOPLE if p[2] == "account_owner")

TEAMS = (
    # id, name, lead, members: the two sales teams, and the queue of customers whose owner
    # left (the notifier's default team)
    ("unassigned", "未分配客户", "wang.fang", ("liu.yang",)),
    ("enterprise", "大客户部", "wang.fang", ("liu.yang", "zhao.lei")),
    ("commercial", "商业客户部", "chen.jie", ("sun.li", "zhou.min")),
)

TEAM_OF = {member: team[0] for team in TEAMS[1:] for member in team[3]}
"""The sales team of each account owner (a demo profile's `team`)."""


def demo_directory(path: Path, sink: str, tokens: dict[str, str] | None) -> dict[str, str]:
    """Writes the directory (every person's alerts go to the local sink as a signed webhook);
    returns person id -> token (and "admin" -> the admin's), new ones unless given."""
    if tokens is None or not all(p[0] in tokens for p in PEOPLE):
        tokens = {person[0]: "tst_" + secrets.token_urlsafe(24) for person in PEOPLE}
        tokens["admin"] = tokens["zhang.wei"]
    people = [
        {
            "id": pid,
            "name": name,
            "role": role,
            "manager": manager,
            "language": language,
            "token_sha256": hash_token(tokens[pid]),
            "channels": [{"kind": "webhook", "url": f"{sink}/alerts/{pid}", "secret": "demo"}],
        }
        for pid, name, role, manager, language in PEOPLE
    ]
    teams = [
        {"id": tid, "name": name, "lead": lead, "members": list(members)}
        for tid, name, lead, members in TEAMS
    ]
    path.write_text(
        "# Demo directory written by `make up`; tokens are in notifier-tokens.json.\n"
        "# Add contact channels per person (webhook, slack, dingtalk, wecom, email).\n"
        + yaml.safe_dump({"people": people, "teams": teams}, allow_unicode=True, sort_keys=False)
    )
    return tokens
