#!/usr/bin/env python
"""Entry point compatible with the paper's script: ``python main.py --data DIR -a resnet50_lpf4 --pretrained -e``."""
import sys

from antialiased.cli.paper import main

if __name__ == "__main__":
    sys.exit(main())
