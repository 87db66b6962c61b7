from connpack.cli import main

main()
