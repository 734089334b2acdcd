"""`python -m hub.cli`: the `hub` command."""

from hub.cli import main

if __name__ == "__main__":
    main()
