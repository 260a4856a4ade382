from eominer.cli import main

main()
