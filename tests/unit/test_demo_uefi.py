"""The UEFI test guest's pure parts: finding the firmware package in an archive index
(node_agent/demo_vm/firmware.py) and the domain a UEFI guest gets (demo_vm/domain.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.demo_vm.domain import domain_xml
from node_agent.demo_vm.firmware import Firmware, FirmwareError, package_stanza
from node_agent.resources.vm_xml import parse_domain, problems

INDEX = """Package: ovmf-ia32
Version: 2025.02-8
Filename: pool/main/e/edk2/ovmf-ia32_2025.02-8_all.deb
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: ovmf
Source: edk2
Version: 2025.02-8+deb13u1
Architecture: all
Filename: pool/main/e/edk2/ovmf_2025.02-8+deb13u1_all.deb
SHA256: 78e0d54df11fc77406cb7a0bc9a39e5bca6d1cbe06556b91d9a73491c52decdf

Package: ovmf-legacy
Version: 1
Filename: pool/main/x/ovmf-legacy_1_all.deb
SHA256: 2222222222222222222222222222222222222222222222222222222222222222
"""

FW = Firmware(Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd"))
DIR = Path("/srv/vms/efi")


def test_the_ovmf_stanza_is_found_by_its_exact_name() -> None:
    st = package_stanza(INDEX)
    assert st["Filename"] == "pool/main/e/edk2/ovmf_2025.02-8+deb13u1_all.deb"
    assert st["Version"] == "2025.02-8+deb13u1" and st["SHA256"].startswith("78e0d5")


def test_an_index_without_it_is_an_index_error() -> None:
    with pytest.raises(FirmwareError, match=r"^index: .* no usable ovmf stanza"):
        package_stanza(INDEX.replace("Package: ovmf\n", "Package: other\n"))


def xml(**kw: object) -> str:
    return domain_xml("efi", kernel=DIR / "vmlinuz", initrd=DIR / "initrd.img", cmdline="c",
                      disk=DIR / "disk.qcow2", console_log=Path("/var/log/c.log"),
                      **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_uefi_domain_boots_q35_through_the_loader_with_its_nvram_replicated() -> None:
    text = xml(uefi=FW, nvram=DIR / "nvram.fd")
    assert "machine='q35'" in text and "machine='pc'" not in text
    assert f"<loader readonly='yes' type='pflash'>{FW.code}</loader>" in text
    assert f'<nvram template="{FW.vars_template}">{DIR}/nvram.fd</nvram>' in text
    spec = parse_domain(text, "efi")
    assert dict(spec.files)["nvram"] == f"{DIR}/nvram.fd"
    # The loader (node-installed firmware) lies outside the directory, and may.
    assert problems(spec, [str(DIR)]) == []


def test_the_default_domain_has_no_firmware_and_the_two_go_together() -> None:
    text = xml()
    assert "machine='pc'" in text and "<loader" not in text and "<nvram" not in text
    with pytest.raises(ValueError, match="go together"):
        xml(uefi=FW)
