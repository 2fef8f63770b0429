"""``python -m tamis`` (also what ``torchrun -m tamis`` launches)."""

from tamis.cli import main

if __name__ == "__main__":
    main()
