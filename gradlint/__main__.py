from gradlint.launch import main

main()
