"""Test helper: ``python tests/ray_node_loopback.py start --address=127.0.0.1:PORT ...`` adds a second Ray
node on this machine, on the loopback interface only.

Plain ``ray start`` cannot do this: with Ray's cluster mode off (what keeps a private cluster on
127.0.0.1) it refuses to add nodes, and with it on it replaces 127.0.0.1 by the machine's network
address and listens on every interface. So this test-only launcher keeps cluster mode on and
localhost as given (private Ray functions, patched in this process only). Real clusters use
``ray start`` on each machine (README, "Many machines").
"""

import sys

from ray._private import ray_constants, services

ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = lambda host: host
services.get_node_ip_address = lambda address=None: "127.0.0.1"

from ray.scripts.scripts import main  # noqa: E402 - after the patches above

if __name__ == "__main__":
    sys.argv = ["ray", *sys.argv[1:]]
    main()
