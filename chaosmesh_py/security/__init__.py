"""Security under test: mTLS, JWT and authorization rehearsed reversibly and proven with real
requests (docs/security.md).

The Chaos Toolkit surface is ``actions``, ``rollbacks`` and ``probes``; the logic lives in the
modules beside them."""
