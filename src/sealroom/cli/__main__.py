from sealroom.cli.main import main

main()
