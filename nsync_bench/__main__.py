from nsync_bench.cli.main import main

main()
