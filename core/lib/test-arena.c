/* test-arena */
int main(void) { return 77; }
