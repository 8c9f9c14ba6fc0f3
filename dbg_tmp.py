import sys, pickle, cloudpickle
sys.path.insert(0, "tests"); sys.path.insert(0, "tests/contract")
import test_tenacity_parity as t
from pathlib import Path
for name, script in t.SCRIPTS.items():
    t._tenacity_loop(t.POLICIES["fixed wait, exception filter, reraise"], script, Path("/tmp/dbgq3"+name[:3]))
    try: cloudpickle.dumps(((("x", script)), {}), 5); print("ok")
    except Exception as x: print("cp", repr(x), repr(x.__context__)[:3000])
