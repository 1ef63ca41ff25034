/* test-loader */
int main(void) { return 77; }
