"""``python -m mtlcli`` (also what ``torchrun -m mtlcli`` runs)."""

from mtlcli.cli import main

if __name__ == "__main__":
    main()
