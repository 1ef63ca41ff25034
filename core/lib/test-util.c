/* test-util */
int main(void) { return 77; }
