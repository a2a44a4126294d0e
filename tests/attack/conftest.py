"""The integration tests' fixtures (tests/integration/conftest.py) for the long attacks."""

import importlib.util
import os
import sys

_INTEGRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration")
sys.path.insert(0, _INTEGRATION)
_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               os.path.join(_INTEGRATION, "conftest.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})
