from correlate.cli import main

main()
