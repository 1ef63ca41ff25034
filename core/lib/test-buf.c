/* test-buf */
int main(void) { return 77; }
