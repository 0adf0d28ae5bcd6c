"""The generated ISA corpus against the CPU this runs on: every host-checkable
case (x87/SSE XSAVE forms, XGETBV, RDTSCP ...; and, on a host with AMX, the
tile configuration, load/store and integer dot-product cases) built with gcc
and run natively must print what its header expects -- the expectations the
emulator is tested against (guest/tools/gen_isa_corpus.py --verify-on-host)."""
import subprocess
import sys

from tests.guestbuild import REPO, require_gcc

sys.path.insert(0, str(REPO / "guest" / "tools"))
from gen_isa_corpus import host_has_amx


def test_corpus_expectations_hold_on_this_host_cpu(tmp_path):
    require_gcc()
    result = subprocess.run([sys.executable, str(REPO / "guest" / "tools" / "gen_isa_corpus.py"), "--out",
                             str(tmp_path), "--verify-on-host"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    checked = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert len(checked) >= 25, result.stdout
    amx_checked = [line for line in checked if line.split()[1].startswith(("tdpbssd", "tileloadd", "ldtilecfg"))]
    assert bool(amx_checked) == host_has_amx(), result.stdout
