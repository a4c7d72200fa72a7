"`python -m fewshot_fastai`: the `fewshot-fastai` command line"
import sys
from .cli import main

sys.exit(main())
