"""mtlcli: multi-task learning experiments from the command line.

Importing the package is cheap (no torch): the CLI's ``--help`` must stay fast.
"""

__version__ = "0.1.0"
