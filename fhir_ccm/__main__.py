import sys

from fhir_ccm.cli import main

sys.exit(main())
