from batchbench.cli import main

main()
